#!/usr/bin/env bats
# 200-proxy: bro-proxy under systemd-socket-activate, into namespaces it did
# not create: a netns made with `ip netns add`, rootful and rootless Podman
# containers found through bro-hook's records. Plus the refusals.

load helpers


setup() {
  bro_setup
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
}


# activate PORT ARGS...: bro-proxy ARGS behind a socket on 127.0.0.1:PORT,
# as root, started on the first connection by systemd-socket-activate.
activate() {
  local port=$1; shift
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$port" "$BRO_PROXY" --log-level debug "$@" >/dev/null
  wait_for_port "$port"
}

# proxy_log: what every bro-proxy of this test logged.
proxy_log() { cat "$BATS_TEST_TMPDIR"/bg.*.log; }

@test "drop-in for systemd-socket-proxyd: the reply after a half-close arrives, 20 of 20" {
  requires root
  local back front
  back=$(free_port); front=$(free_port)
  run_bg "$BROLOAD" serve --after-eof --listen "127.0.0.1:$back" >/dev/null
  wait_for_port "$back"
  activate "$front" "127.0.0.1:$back"
  run_cmd 0 "$BROLOAD" halfclose "127.0.0.1:$front" -n 20
  assert_output "20/20 replies after half-close"
}

@test "--netns: a client that arrives 1 s before its backend is held, not reset" {
  requires root
  make_netns
  local front; front=$(free_port)
  activate "$front" --netns "/run/netns/$NETNS" 127.0.0.1:8080
  run_bg ip netns exec "$NETNS" sh -c "sleep 1; exec $BROLOAD serve --listen 127.0.0.1:8080" >/dev/null
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 5 --timeout 20s
  assert_output "5/5 clients served, 0 failed"
  run_cmd 0 proxy_log
  assert_output --regexp 'level=info msg="backend ready" after_ms=[0-9]+ attempts=[0-9]+'
  # the backend listens inside the namespace only: not on the host
  run_cmd '!' "$BROLOAD" clients 127.0.0.1:8080 -n 1 --timeout 1s
}

@test "--netns: 1000 concurrent clients are all served with the default limit" {
  requires root
  make_netns
  local front; front=$(free_port)
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --listen 127.0.0.1:8080 >/dev/null
  activate "$front" --netns "/run/netns/$NETNS" 127.0.0.1:8080
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 1000 --hold 500ms --timeout 60s
  assert_output "1000/1000 clients served, 0 failed"
}

@test "--netns of a file that is not a namespace is refused" {
  requires root
  local front; front=$(free_port)
  activate "$front" --netns /etc/hostname 127.0.0.1:1
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front/"
  run_cmd 0 proxy_log
  assert_output --partial "namespace /etc/hostname: not a namespace file (not on nsfs)"
}

@test "no inherited sockets: one clear error" {
  run_cmd 1 "$BRO_PROXY" 127.0.0.1:1
  assert_output --partial 'no sockets inherited (LISTEN_FDS is unset or 0; run under a systemd .socket unit or systemd-socket-activate)'
}

@test "rootful Podman, Network=none: found through the hook's record, restart followed" {
  requires root bro
  local front; front=$(free_port)
  local www=$BATS_TEST_TMPDIR/www
  mkdir -p "$www"; echo first >"$www/index.html"
  run_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 \
    -v "$www:/www:ro" "$BBOX_IMAGE" httpd -f -p 127.0.0.1:8080 -h /www
  activate "$front" --container "$BRO_TEST_PREFIX" 127.0.0.1:8080
  run_cmd 0 curl -sS --max-time 20 "http://127.0.0.1:$front/"
  assert_output first
  # replace the container: new id, pid and netns; the socket stays
  echo second >"$www/index.html"
  run_podman 0 rm -f -t 0 "$BRO_TEST_PREFIX"
  run_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 \
    -v "$www:/www:ro" "$BBOX_IMAGE" httpd -f -p 127.0.0.1:8080 -h /www
  run_cmd 0 curl -sS --max-time 20 "http://127.0.0.1:$front/"
  assert_output second
  run_cmd 0 proxy_log
  assert_output --partial 'container gone; waiting for it to start again'
  [[ $(grep -c 'container found; entered its network namespace' <<<"$output") == 2 ]] ||
    fail "want two 'container found' lines"
}

@test "rootless, Network=none, no privileges: the user's own proxy reaches the user's container" {
  requires root bro
  local front; front=$(free_port)
  local www; www=$(user_tmpdir "$RIG_USER")
  as_user "$RIG_USER" sh -c "echo rootless-hello > $www/index.html"
  run_user_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 \
    -v "$www:/www:ro" "$BBOX_IMAGE" httpd -f -p 127.0.0.1:8080 -h /www
  local bg; bg=$(run_bg as_user "$RIG_USER" "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" "$BRO_PROXY" \
    --container "$BRO_TEST_PREFIX" 127.0.0.1:8080)
  wait_for_port "$front"
  run_cmd 0 curl -sS --max-time 20 "http://127.0.0.1:$front/"
  assert_output rootless-hello
  # the proxy runs as the user without any capability; its namespace helper
  # has capabilities only inside the user's own rootless user namespace,
  # the container's, and is the user on the host
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX"
  local cpid=$output proxy helper
  # this test's own proxy and helper: the demo's or another suite's may run
  proxy=$(descendant "$bg" "^$BRO_PROXY --container $BRO_TEST_PREFIX ")
  helper=$(descendant "$proxy" '^bro-proxy-nshelper')
  run_cmd 0 awk '/^Cap(Eff|Prm|Bnd|Amb):/{print $2}' "/proc/$proxy/status"
  assert_output --regexp '^0000000000000000
0000000000000000
[0-9a-f]+
0000000000000000$'
  run_cmd 0 readlink "/proc/$helper/ns/user" "/proc/$helper/ns/net"
  assert_output "$(readlink "/proc/$cpid/ns/user" "/proc/$cpid/ns/net")"
  run_cmd 0 awk '/^Uid:/{print $2}' "/proc/$helper/status"
  assert_output "$(id -u "$RIG_USER")"
}

# activate_as USER PORT ARGS...: like activate, as USER.
activate_as() {
  local user=$1 port=$2; shift 2
  run_bg as_user "$user" "$SOCKET_ACTIVATE" -l "127.0.0.1:$port" "$BRO_PROXY" "$@" >/dev/null
  wait_for_port "$port"
}

@test "refused: another user's proxy cannot enter the user's container" {
  requires root bro
  run_user_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 \
    "$BBOX_IMAGE" sleep 300
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX"
  local pid=$output uid cuid; uid=$(id -u "$RIG_USER"); cuid=$(id -u "$CROSS_USER")
  # by pid: the kernel and bro-proxy both refuse (the namespace belongs to
  # the first user's user namespace); the client is closed, nothing entered
  local front; front=$(free_port)
  activate_as "$CROSS_USER" "$front" --pid "$pid" 127.0.0.1:8080
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front/"
  # by record: the first user's state directory is closed to the second
  local front2; front2=$(free_port)
  run_bg as_user "$CROSS_USER" "$SOCKET_ACTIVATE" -l "127.0.0.1:$front2" -E "BRO_STATE_DIR=/run/user/$uid/bro" \
    "$BRO_PROXY" --container "$BRO_TEST_PREFIX" 127.0.0.1:8080 >/dev/null
  wait_for_port "$front2"
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front2/"
  # and its own (empty) state directory knows no such container
  local front3; front3=$(free_port)
  activate_as "$CROSS_USER" "$front3" --container "$BRO_TEST_PREFIX" --container-timeout 1s 127.0.0.1:8080
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front3/"
  run_cmd 0 proxy_log
  assert_output --regexp "(--pid $pid: open namespace /proc/$pid/ns/net: .*permission denied|belongs to a user namespace of uid $uid, not $cuid)"
  assert_output --partial "open state directory /run/user/$uid/bro: permission denied"
  assert_output --partial "no live record of container"
  assert_output --partial "$BRO_TEST_PREFIX\\\" in /run/user/$cuid/bro"
}

@test "refused: a record whose start time does not match its pid (pid reuse)" {
  requires root bro
  run_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=8080 "$BBOX_IMAGE" sleep 300
  local id=${lines[-1]}
  local state=$BATS_TEST_TMPDIR/state
  install -d -m 0700 "$state"
  jq '.pidStart -= 1' "/run/bro/$id.json" >"$state/$id.json"
  chmod 600 "$state/$id.json"
  local pid; pid=$(jq .pid "$state/$id.json")
  local front; front=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" -E "BRO_STATE_DIR=$state" \
    "$BRO_PROXY" --container "$BRO_TEST_PREFIX" --container-timeout 1s 127.0.0.1:8080 >/dev/null
  wait_for_port "$front"
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front/"
  # --pid checks the same record
  local front2; front2=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front2" -E "BRO_STATE_DIR=$state" \
    "$BRO_PROXY" --pid "$pid" 127.0.0.1:8080 >/dev/null
  wait_for_port "$front2"
  run_cmd '!' curl -sS --max-time 10 "http://127.0.0.1:$front2/"
  run_cmd 0 proxy_log
  assert_output --partial "ignoring stale record ${id:0:12} of container $BRO_TEST_PREFIX: pid $pid is gone or was reused (start time differs)"
  assert_output --partial "--pid $pid: start time"
  assert_output --partial "does not match the record of container $BRO_TEST_PREFIX"
}
