#!/usr/bin/env bats
# 001-smoke: the rig works. Nothing of Brothaman here: when these fail, every
# later suite fails for reasons that are not ours (see test/rig/README.md).

load helpers

@test "rootful podman runs $BBOX_IMAGE with the wrapper runtime" {
  requires root
  # explicit --runtime, although run_podman adds ROOT_RUNTIME: this is the
  # command the README tells people to type
  run_podman 0 run --rm --runtime /usr/local/bin/runc-sandbox --network none \
    --name "$BRO_TEST_PREFIX" "$BBOX_IMAGE" sh -c 'echo rootful-ok; id -u'
  assert_line --index 0 rootful-ok
  assert_line --index 1 0
}

@test "rootless podman of $RIG_USER runs $BBOX_IMAGE on overlay storage" {
  requires root
  run_user_podman 0 run --rm --network none --name "$BRO_TEST_PREFIX" "$BBOX_IMAGE" \
    sh -c 'echo rootless-ok; id -u'
  # uid 0 in the container is the user outside
  assert_output "rootless-ok
0"
  # vfs would copy the whole image on every quadlet start
  run_user_podman 0 info --format '{{.Store.GraphDriverName}} {{.Host.Security.Rootless}}'
  assert_output "overlay true"
}

@test "the systemd --user manager of $RIG_USER answers with a clean environment" {
  requires root
  run_cmd '?' user_systemctl is-system-running
  assert_output --regexp '^(running|degraded)$'
  # a manager started from root's shell without env -i would hand root's
  # environment to every unit
  run_cmd 0 user_systemctl show-environment
  assert_line "XDG_RUNTIME_DIR=/run/user/$(id -u "$RIG_USER")"
  assert_line "HOME=$(getent passwd "$RIG_USER" | cut -d: -f6)"
  refute_line --regexp '^(HOME=/root|PWD=/root)'
}

@test "quadlet turns a .container into a unit that starts and stops" {
  requires root user_manager
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" "[Unit]
Description=bro smoke $BRO_TEST_PREFIX

[Container]
Image=$BBOX_IMAGE
Network=none
# busybox sleep as PID 1 ignores SIGTERM: stopping would take 10 s and
# end in SIGKILL (status 137, unit failed)
Exec=sh -c 'trap \"exit 0\" TERM; sleep 1000 & wait'"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl cat "$BRO_TEST_PREFIX.service"
  assert_line --partial "# /run/user/$(id -u "$RIG_USER")/systemd/generator/$BRO_TEST_PREFIX.service"
  assert_line --regexp "^ExecStart=.*podman run --name systemd-%N .*--rm .*--network none .*$BBOX_IMAGE sh -c "

  # the whole path: user manager, podman --cgroups=split, the wrapper runtime
  run_cmd 0 user_systemctl start "$BRO_TEST_PREFIX.service"
  wait_unit_state "$BRO_TEST_PREFIX.service" active
  run_user_podman 0 inspect --format '{{.Name}} {{.State.Status}}' "systemd-$BRO_TEST_PREFIX"
  assert_output "systemd-$BRO_TEST_PREFIX running"
  run_cmd 0 user_systemctl stop "$BRO_TEST_PREFIX.service"
  wait_unit_state "$BRO_TEST_PREFIX.service" inactive
  run_user_podman 0 ps -a --filter "name=^systemd-$BRO_TEST_PREFIX\$" --format '{{.Names}}'
  assert_output ""
}

@test "systemd-socket-activate hands a socket to systemd-socket-proxyd" {
  requires root cmd:"$SOCKET_ACTIVATE" cmd:nc
  [[ -x $SOCKET_PROXYD ]] || fail "$SOCKET_PROXYD missing (Debian package systemd)"
  run_cmd 0 systemd-analyze --version
  # the lab's pre-Brothaman path, end to end: a listener on 127.0.0.1,
  # activation on the first connection, a proxy to a backend
  local front back
  front=$(free_port)
  back=$(free_port)
  run_bg nc -d -l 127.0.0.1 "$back" >/dev/null
  wait_for_port "$back"
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" "$SOCKET_PROXYD" "127.0.0.1:$back" >/dev/null
  wait_for_port "$front"
  run_cmd 0 nc -N 127.0.0.1 "$front" <<<"proxied-ok"
  # nc -l ends when the proxy closes the connection after the client's EOF
  retry 50 0.1 grep -q proxied-ok "$BATS_TEST_TMPDIR"/bg.*.log
}

@test "/dev/net/tun is usable by rootless slirp4netns" {
  requires root
  run_cmd 0 stat -c '%F %a' /dev/net/tun
  assert_output "character special file 666"
  run_user_podman 0 run --rm --network slirp4netns --name "$BRO_TEST_PREFIX" "$BBOX_IMAGE" \
    ip -4 -o addr show tap0
  assert_output --partial "inet 10.0.2.100/24"
}

@test "a container of $CROSS_USER reaches the host's 127.0.0.1 through slirp4netns" {
  requires root cmd:nc
  local port
  port=$(free_port)
  run_bg nc -d -l 127.0.0.1 "$port" >/dev/null
  wait_for_port "$port"
  # without allow_host_loopback, slirp4netns answers 10.0.2.2 with unreachable
  run_cmd 0 as_user "$CROSS_USER" timeout "$BRO_TIMEOUT" "$PODMAN" run --rm \
    --network slirp4netns:allow_host_loopback=true --name "$BRO_TEST_PREFIX" "$BBOX_IMAGE" \
    sh -c "echo cross-ok | nc -w 5 10.0.2.2 $port"
  retry 50 0.1 grep -q cross-ok "$BATS_TEST_TMPDIR"/bg.*.log
}
