#!/usr/bin/env bats
# 500-hostile: bad input to the installed binaries, end to end. Each: one
# clear error, the documented exit code, nothing written, nothing left
# running. (bro-hook's bad input is cmd/bro-hook/main_test.go; the parsers'
# corner cases are the Go unit tests and fuzz targets.)

load helpers


setup() {
  bro_setup
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
}

# last_bg: the pid of the last run_bg job (run_bg >/dev/null keeps the job a
# child of this shell, so that `wait` can give its exit status).
last_bg() { tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids"; }

# wait_exit PID TIMEOUT: wait for the child PID to exit within TIMEOUT s;
# sets EXIT_STATUS and EXIT_AFTER (seconds).
wait_exit() {
  local pid=$1 timeout=$2 start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    (( SECONDS - start < timeout )) || fail "pid $pid still running after ${timeout}s"
    sleep 0.1
  done
  EXIT_STATUS=0
  wait "$pid" || EXIT_STATUS=$?
  EXIT_AFTER=$(( SECONDS - start ))
}

# ------------------------------------------------------------- bro-proxy

@test "bro-proxy: a regular file as fd 3 is refused with one line, exit 1" {
  requires bro
  echo data >"$BATS_TEST_TMPDIR/file"
  run_cmd 1 bash -c 'exec 3<"$1"; LISTEN_FDS=1 LISTEN_PID=$$ exec "$2" 127.0.0.1:1' bash \
    "$BATS_TEST_TMPDIR/file" "$BRO_PROXY"
  assert_output --partial 'inherited fd 3 (unknown) is not a socket'
  assert_equal "${#lines[@]}" 1
}

@test "bro-proxy: LISTEN_PID of another process is refused, the sockets are not taken" {
  requires bro
  local port; port=$(free_port)
  run_cmd 1 env LISTEN_PID=1 LISTEN_FDS=1 "$BRO_PROXY" 127.0.0.1:1
  assert_output --regexp 'LISTEN_PID=1 is not this process \(pid [0-9]+\): the sockets were meant for another process'
  assert_equal "${#lines[@]}" 1
  run_cmd 1 env LISTEN_PID=abc LISTEN_FDS=1 "$BRO_PROXY" 127.0.0.1:1
  assert_output --partial 'LISTEN_PID=abc is not this process'
  run_cmd 1 env LISTEN_FDS=1 "$BRO_PROXY" 127.0.0.1:1
  assert_output --regexp 'LISTEN_FDS=1 but LISTEN_PID is unset; want LISTEN_PID=[0-9]+'
}

@test "bro-proxy: targets that name nothing are refused before serving" {
  requires bro
  local t want
  # bro-proxy with a listening socket on fd 3, as systemd passes it; each
  # bad TARGET: exit 1 with one line naming it (logrus escapes its quotes).
  while IFS='|' read -r t want; do
    [[ -n $t ]] || continue
    run_cmd 1 python3 -c '
import os, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"; os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])' "$BRO_PROXY" "$t"
    assert_output --partial "$want"
    assert_equal "${#lines[@]}" 1
  done <<'EOF'
nosuchhost.invalid:80|TARGET argument: target \"nosuchhost.invalid:80\": host \"nosuchhost.invalid\" is not an IP address or localhost
127.0.0.1:0|port \"0\" is not in 1-65535
127.0.0.1:65536|port \"65536\" is not in 1-65535
127.0.0.1:abc|port \"abc\" is not in 1-65535
127.0.0.1|want HOST:PORT (IPv6 in brackets)
[fe80::1%lo]:80|is not an IP address or localhost
EOF
}

@test "bro-proxy: a unix target that does not exist: the client is closed after --connect-timeout, the proxy serves the next" {
  requires root bro
  local front sock=$BATS_TEST_TMPDIR/backend.sock
  front=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" "$BRO_PROXY" --connect-timeout 1s "$sock" >/dev/null
  wait_for_port "$front"
  # closed, not held: EOF, or a reset as the line it sent was never read
  run_cmd 0 "$BROLOAD" probe "127.0.0.1:$front" --timeout 10s
  assert_output --regexp '^ended: (eof|reset) after 0 bytes$'
  # the socket appears: the next client is served by the same proxy
  run_bg python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()
while True:
    c, _ = s.accept(); c.sendall(c.recv(100)); c.close()' "$sock" >/dev/null
  retry 50 0.1 test -S "$sock"
  run_cmd 0 bash -c "printf 'ping\n' | timeout 10 nc -q 5 127.0.0.1 $front"
  assert_output ping
  run_cmd 0 cat "$BATS_TEST_TMPDIR"/bg.*.log
  assert_output --partial "not reachable within 1s"
}

@test "bro-proxy: --container that never appears: the client is closed and bro-proxy exits 1 at --container-timeout" {
  requires root bro
  local front state=$BATS_TEST_TMPDIR/state pid
  install -d -m 0700 "$state"
  front=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" -E "BRO_STATE_DIR=$state" \
    "$BRO_PROXY" --container "$BRO_TEST_PREFIX-never" --container-timeout 2s 127.0.0.1:8080 >/dev/null
  pid=$(last_bg)
  wait_for_port "$front"
  SECONDS=0
  run_cmd 0 "$BROLOAD" probe "127.0.0.1:$front" --timeout 20s
  assert_output --regexp '^ended: (eof|reset) after 0 bytes$'
  (( SECONDS >= 2 && SECONDS <= 6 )) || fail "the client ended after ${SECONDS}s; want 2-6 s (--container-timeout 2s)"
  wait_exit "$pid" 10
  assert_equal "$EXIT_STATUS" 1
  run_cmd 0 cat "$BATS_TEST_TMPDIR/bg.$pid.log"
  assert_output --partial "container \\\"$BRO_TEST_PREFIX-never\\\" did not start within 2s"
  # nothing was written into the state directory
  run_cmd 0 ls -A "$state"
  assert_output ""
}

# ---------------------------------------------------------- bro-activate

# activate_in DIR NAME: bro-activate NAME as RIG_USER with the quadlets in
# DIR/q and the units written to DIR/cfg/systemd/user (nothing in the
# user's real directories).
activate_in() {
  local d=$1; shift
  as_user "$RIG_USER" env HOME="$d" XDG_CONFIG_HOME="$d/cfg" QUADLET_UNIT_DIRS="$d/q" "$BRO_ACTIVATE" "$@"
}

@test "bro-activate: a quadlet with a BOM, CRLF, continuation lines, unknown sections and repeated keys" {
  requires root bro
  local d; d=$(user_tmpdir "$RIG_USER")
  as_user "$RIG_USER" mkdir -p "$d/q"
  printf '\xef\xbb\xbf[Unit]\r\nDescription=odd\r\n[X-Unknown]\r\nFoo=bar\r\n[Container]\r\nImage=%s\r\nAnnotation=other=1\r\nAnnotation=bro.activate=127.0.0.1:18080:\\\r\n  8080\r\nAnnotation=other=2\r\n[Container]\r\nExec=httpd -f \\\r\n -p 8080\r\n' \
    "$BBOX_IMAGE" >"$d/q/odd.container"
  chown "$RIG_USER" "$d/q/odd.container"
  run_cmd 0 activate_in "$d" odd
  run_cmd 0 cat "$d/cfg/systemd/user/odd-activator.socket" "$d/cfg/systemd/user/odd-activator.service"
  assert_line ListenStream=127.0.0.1:18080
  assert_line --regexp '^ExecStart=.*bro-proxy --container systemd-odd .*--target 127.0.0.1:8080$'
}

@test "bro-activate: bad ports, names and sizes: one error naming the value, nothing written" {
  requires root bro
  local d; d=$(user_tmpdir "$RIG_USER")
  as_user "$RIG_USER" mkdir -p "$d/q"
  local v
  for v in 0 65536 abc 80:abc 99999:80 '[::1:80'; do
    printf '[Container]\nImage=%s\nAnnotation=bro.activate=%s\n' "$BBOX_IMAGE" "$v" >"$d/q/bad.container"
    chown "$RIG_USER" "$d/q/bad.container"
    run_cmd 1 activate_in "$d" bad
    assert_output --partial "invalid bro.activate=\"$v\""
    assert_output --partial "want [[ip:]hostPort:]containerPort[/tcp|/udp]"
  done
  for v in ../bad a/b ..x; do
    run_cmd '!' activate_in "$d" "$v"
    assert_output --partial "invalid quadlet name \"$v\""
  done
  # 1 MiB and more: refused, not read to the end
  { printf '[Container]\nImage=%s\nAnnotation=bro.activate=8080\n' "$BBOX_IMAGE"
    head -c $((1024 * 1024)) /dev/zero | tr '\0' '#'; } >"$d/q/big.container"
  chown "$RIG_USER" "$d/q/big.container"
  run_cmd 1 activate_in "$d" big
  assert_output --partial "larger than the limit of 1048576 bytes"
  # nothing anywhere but the quadlets themselves
  run_cmd 0 find "$d" -path "$d/q" -prune -o -type f -print
  assert_output ""
}
