#!/usr/bin/env bats
# 540-crash: crashes under load, through real user-manager activators: bro-proxy
# killed with clients queued in the backlog, the container killed while 50
# clients stream through it.

load helpers


setup() {
  bro_setup
  requires root user_manager bro
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
}

# echo_activator: a Network=none container running broload's line echo
# server (static, bind-mounted) on 8080, behind bro-activate's units; sets
# PORT and NAME.
echo_activator() {
  NAME=$BRO_TEST_PREFIX-echo
  PORT=$(free_port)
  local bin; bin=$(user_tmpdir "$RIG_USER")
  install -m 0755 "$BROLOAD" "$bin/broload"
  write_quadlet "$RIG_USER" "$NAME.container" <<EOF
[Container]
Image=$BBOX_IMAGE
Network=none
Volume=$bin/broload:/broload:ro
Annotation=bro.activate=127.0.0.1:$PORT:8080
Exec=/broload serve --listen 127.0.0.1:8080
EOF
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$NAME"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$NAME-activator.socket"
  wait_for_port "$PORT"
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$PORT" -n 1 --timeout 60s
  assert_output "1/1 clients served, 0 failed"
}

@test "SIGKILL of bro-proxy with clients queued: systemd restarts it and every queued client is served" {
  echo_activator
  local proxy
  proxy=$(user_systemctl show -p MainPID --value "$NAME-activator.service")
  [[ $proxy -gt 0 ]] || fail "no bro-proxy running"
  kill -9 "$proxy"
  # these connect while no bro-proxy runs: the kernel queues them on
  # systemd's socket until Restart=on-failure brings bro-proxy back
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$PORT" -n 20 --timeout 60s
  assert_output "20/20 clients served, 0 failed"
  run_cmd 0 user_systemctl show -p MainPID,NRestarts "$NAME-activator.service"
  refute_line "MainPID=$proxy"
  assert_line "NRestarts=1"
}

@test "kill -9 of the container while 50 clients stream: they end cleanly, new ones wait for the restarted container" {
  echo_activator
  run_bg "$BROLOAD" stream "127.0.0.1:$PORT" -n 50 --timeout 30s >/dev/null
  local streamer
  streamer=$(tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids")
  # all 50 streaming through the proxy
  retry 50 0.2 sh -c "[ \$(ss -Htn state established '( sport = :$PORT )' | wc -l) -ge 50 ]"
  run_user_podman 0 inspect -f '{{.State.Pid}}' "systemd-$NAME"
  kill -9 "$output"
  # every stream ends with EOF or a reset, none hangs until the timeout
  local i
  for i in $(seq 100); do kill -0 "$streamer" 2>/dev/null || break; sleep 0.2; done
  run_cmd 0 cat "$BATS_TEST_TMPDIR/bg.$streamer.log"
  assert_output --regexp '^50 clients: [0-9]+ eof, [0-9]+ reset, 0 timeout, 0 error, 0 connect failed; [0-9]+ lines echoed$'
  # new clients: bro-proxy starts the unit again (--start-unit) and holds them
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$PORT" -n 10 --timeout 60s
  assert_output "10/10 clients served, 0 failed"
}
