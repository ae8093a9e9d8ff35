#!/usr/bin/env bats
# 320-direct: bro-activate-direct NAME writes NAME.socket; the first
# connection starts the quadlet's own NAME.service and Podman passes the
# socket into the container (LISTEN_FDS), where bro-testserver answers. No
# bro-proxy runs.

load helpers
load testserver

setup() {
  bro_setup
  requires root user_manager bro
  UNIT_DIR=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user
  build_testserver_image
}

teardown() { bro_teardown; }

@test "direct mode: the container itself answers on NAME.socket, no bro-proxy" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$TESTSERVER_IMAGE
ContainerName=$p
Network=none"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" --listen "127.0.0.1:$port" "$p"
  assert_line "wrote $UNIT_DIR/$p.socket"
  assert_line "next: systemctl --user daemon-reload && systemctl --user enable --now $p.socket"
  run_cmd 0 user_systemctl daemon-reload
  # the socket activates quadlet's generated NAME.service: verify them together
  run_cmd 0 as_user "$RIG_USER" systemd-analyze --user verify "$UNIT_DIR/$p.socket" \
    "/run/user/$(id -u "$RIG_USER")/systemd/generator/$p.service"
  assert_output ""
  run_cmd 0 user_systemctl enable --now "$p.socket"
  wait_for_port "$port"
  run_cmd 0 unit_state "$p.service"
  assert_output inactive

  run_cmd 0 ask "$port" "hello"
  assert_output "testserver: hello"
  run_cmd 0 ask "$port" "whoami"
  # pid 1 in its own pid namespace: the container's process, handed the socket
  assert_output --regexp "^testserver: pid=1 hostname=[0-9a-f]{12} activated=true$"
  run_cmd 0 unit_state "$p.service"
  assert_output active
  # Podman 4.3 passed the fd on and told the container so
  run_user_podman 0 inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$p"
  assert_line LISTEN_PID=1
  assert_line LISTEN_FDS=1
  assert_line "LISTEN_FDNAMES=tcp-$port"
  # no proxy: the socket starts the quadlet's own unit, and no process of that
  # unit's cgroup is a bro-proxy
  run_cmd 0 user_systemctl show -p Triggers --value "$p.socket"
  assert_output "$p.service"
  run_cmd 0 user_systemctl show -p MainPID --value "$p.service"
  local main=$output
  [[ $main -gt 0 ]] || fail "no main pid for $p.service"
  ! _descendants "$main" | xargs -r -I{} cat /proc/{}/comm 2>/dev/null | grep -qx bro-proxy ||
    fail "a bro-proxy runs under $p.service"

  # the container stops, the socket stays, the next client starts it again
  run_cmd 0 user_systemctl stop "$p.service"
  run_cmd 0 ask "$port" "again"
  assert_output "testserver: again"

  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" --remove "$p"
  assert_line "removed $UNIT_DIR/$p.socket"
  [[ -z $(ss -Hltn "sport = :$port") ]]
}

@test "the documented check: systemd-socket-activate + podman run tells a LISTEN_FDS server" {
  local port
  port=$(free_port)
  run_bg as_user "$RIG_USER" "$SOCKET_ACTIVATE" -l "127.0.0.1:$port" \
    "$PODMAN" run --rm --network none --name "$BRO_TEST_PREFIX" "$TESTSERVER_IMAGE"
  wait_for_port "$port"
  run_cmd 0 ask "$port" "whoami"
  assert_output --regexp "^testserver: pid=1 hostname=[0-9a-f]{12} activated=true$"
}
