#!/usr/bin/env bats
# 220-features: what systemd-socket-proxyd lacks: the PROXY protocol (v1 and
# v2) into a namespace, a per-connection idle timeout, TCP keepalive, and the
# counters in STATUS=.

load helpers


setup() {
  bro_setup
  requires root bro
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
  make_netns
}


activate() {
  local port=$1; shift
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$port" "$BRO_PROXY" --log-level debug --netns "/run/netns/$NETNS" "$@" >/dev/null
  wait_for_port "$port"
}

@test "PROXY protocol v1 and v2: the backend in the namespace sees the real client" {
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --proxy-protocol --listen 127.0.0.1:8080 >/dev/null
  local v
  for v in v1 v2; do
    local port; port=$(free_port)
    activate "$port" --proxy-protocol "$v" 127.0.0.1:8080
    run_cmd 0 sh -c "printf 'hello\n' | nc -N 127.0.0.1 $port"
    assert_line --index 0 --regexp "^proxied client=127\.0\.0\.1:[0-9]+ dst=127\.0\.0\.1:$port\$"
    assert_line --index 1 "echo: hello"
  done
}

@test "PROXY protocol per socket name: only the named socket gets the header" {
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --proxy-protocol --listen 127.0.0.1:8080 >/dev/null
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --listen 127.0.0.1:8081 >/dev/null
  local p1 p2; p1=$(free_port); p2=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$p1" -l "127.0.0.1:$p2" --fdname=web:plain \
    "$BRO_PROXY" --netns "/run/netns/$NETNS" --proxy-protocol web=v2 \
    --target web=127.0.0.1:8080 --target plain=127.0.0.1:8081 >/dev/null
  wait_for_port "$p1"; wait_for_port "$p2"
  run_cmd 0 sh -c "printf 'a\n' | nc -N 127.0.0.1 $p1"
  assert_line --index 0 --regexp '^proxied client=127\.0\.0\.1:[0-9]+'
  run_cmd 0 sh -c "printf 'b\n' | nc -N 127.0.0.1 $p2"
  assert_output "echo: b"
}

@test "--idle-timeout closes a silent connection; --keepalive arms probes on both sides" {
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --listen 127.0.0.1:8080 >/dev/null
  local port; port=$(free_port)
  activate "$port" --idle-timeout 1s --keepalive 7s 127.0.0.1:8080
  # a client that says one line and then nothing: closed about 1 s later
  run_cmd 0 timeout 15 sh -c "(printf 'one\n'; sleep 12) | nc 127.0.0.1 $port; echo closed"
  assert_output "echo: one
closed"
  # keepalive: the proxy's side of a held connection has a keepalive timer
  run_bg sh -c "sleep 10 | nc 127.0.0.1 $port" >/dev/null
  retry 20 0.2 sh -c "ss -tnoH state established '( sport = :$port )' | grep -q keepalive"
}

@test "STATUS= counters in systemctl status, and bro-activate status lists every activator" {
  requires user_manager
  local p=$BRO_TEST_PREFIX port www
  port=$(free_port)
  www=$(user_tmpdir "$RIG_USER")
  as_user "$RIG_USER" sh -c "echo status-hello > $www/index.html"
  write_quadlet "$RIG_USER" "$p.container" <<EOF
[Container]
Image=$BBOX_IMAGE
Network=none
Volume=$www:/www:ro
Exec=httpd -f -p 127.0.0.1:8080 -h /www
Annotation=bro.activate=127.0.0.1:$port:8080
EOF
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p-activator.socket"
  wait_for_port "$port"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" status "$p"
  assert_line --index 1 --regexp "^$p +active/listening +127\.0\.0\.1:$port/tcp +inactive +inactive +-\$"
  local i
  for i in 1 2 3; do
    run_cmd 0 curl -sS --max-time 30 "http://127.0.0.1:$port/"
    assert_output status-hello
  done
  # STATUS= is sent at most once a second
  retry 20 0.3 sh -c "$(declare -f as_user); as_user $RIG_USER systemctl --user show -p StatusText --value $p-activator.service | grep -q '3 total'"
  run_cmd 0 user_systemctl show -p StatusText --value "$p-activator.service"
  assert_output --regexp "^serving systemd-$p \(pid [0-9]+\): 0 active, 3 total, 0 failed, 0 refused, [0-9]+ B in, [0-9]+ B out\$"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" status
  assert_line --regexp "^$p +active/running +127\.0\.0\.1:$port/tcp +active/running +active/running +serving systemd-$p "
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" status "$p-nothere"
  assert_output --partial "bro-activate: no activator for $p-nothere"
}
