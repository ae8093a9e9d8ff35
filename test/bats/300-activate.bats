#!/usr/bin/env bats
# 300-activate: bro-activate NAME writes NAME-activator.socket/.service (and
# the idle-stop drop-in) for a real quadlet of the rig user; the units pass
# systemd-analyze --user verify and the real user manager listens on them.
# The container-through-bro-proxy path is 200-proxy's; this stops at the socket.

load helpers

setup() {
  bro_setup
  requires root user_manager bro
  UNIT_DIR=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user
  QUADLET_DIR=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/containers/systemd
}

teardown() {
  # bro_teardown's find does not descend into NAME.service.d of this test.
  [[ -n ${BRO_TEST_PREFIX:-} && -n ${UNIT_DIR:-} ]] && rm -rf "$UNIT_DIR/$BRO_TEST_PREFIX".service.d
  bro_teardown
}

# activate ARGS...: bro-activate as the rig user.
activate() { as_user "$RIG_USER" "$BRO_ACTIVATE" "$@"; }

# verify_user_units FILE...: systemd-analyze --user verify as the rig user;
# any output (verify only warns about unknown keys) is a failure too.
verify_user_units() {
  run_cmd 0 as_user "$RIG_USER" systemd-analyze --user verify "$@"
  assert_output ""
}

@test "bro-activate writes units from the annotation that verify and listen" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$BBOX_IMAGE
Network=none
Exec=sleep 1000
Annotation=bro.activate=$port"
  run_cmd 0 activate --idle-stop 45s "$p"
  assert_line "wrote $UNIT_DIR/$p-activator.socket"
  assert_line "wrote $UNIT_DIR/$p-activator.service"
  assert_line "wrote $UNIT_DIR/$p.service.d/50-$p-activator-idle-stop.conf"
  assert_line "next: systemctl --user daemon-reload && systemctl --user enable --now $p-activator.socket"

  run_cmd 0 cat "$UNIT_DIR/$p-activator.socket"
  assert_line "ListenStream=127.0.0.1:$port"
  assert_line "FileDescriptorName=tcp-$port"
  run_cmd 0 cat "$UNIT_DIR/$p-activator.service"
  assert_line "ExecStart=$BRO_PROXY --container systemd-$p --start-unit $p.service --connections-max 4096 --exit-idle-time 45s --target 127.0.0.1:$port"
  assert_line "Wants=$p.service"
  refute_line "After=$p.service"

  verify_user_units "$UNIT_DIR/$p-activator.socket" "$UNIT_DIR/$p-activator.service"

  run_cmd 0 user_systemctl daemon-reload
  # quadlet's unit got the drop-in; verify NAME.service with it
  run_cmd 0 user_systemctl show -p StopWhenUnneeded --value "$p.service"
  assert_output yes
  verify_user_units "/run/user/$(id -u "$RIG_USER")/systemd/generator/$p.service"
  run_cmd 0 user_systemctl enable --now "$p-activator.socket"
  wait_for_port "$port"
  run_cmd 0 ss -Hltn "sport = :$port"
  assert_output --partial "127.0.0.1:$port"
  # nothing connected yet: neither the proxy nor the container runs
  run_cmd 0 unit_state "$p-activator.service"
  assert_output inactive
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
}

@test "bro-activate adds an annotation of two ports that Podman 4.3 passes on whole (spaces, not commas)" {
  local p=$BRO_TEST_PREFIX a b
  a=$(free_port); b=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$BBOX_IMAGE
Network=none
Exec=sleep 1000"
  run_cmd 0 activate --target "$a" --target "$b/udp" "$p"
  assert_line "added Annotation=\"bro.activate=127.0.0.1:$a:$a/tcp 127.0.0.1:$b:$b/udp\" to $QUADLET_DIR/$p.container"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p.service"
  run_user_podman 0 inspect --format '{{index .Config.Annotations "bro.activate"}}' "systemd-$p"
  assert_output "127.0.0.1:$a:$a/tcp 127.0.0.1:$b:$b/udp"
}

@test "bro-activate adds the annotation from --target, and --remove takes it all back" {
  local p=$BRO_TEST_PREFIX port q
  port=$(free_port)
  q="[Container]
Image=$BBOX_IMAGE
Network=none"
  write_quadlet "$RIG_USER" "$p.container" "$q"
  run_cmd 0 activate --target "$port" "$p"
  assert_line "added Annotation=bro.activate=127.0.0.1:$port:$port/tcp to $QUADLET_DIR/$p.container"
  run_cmd 0 grep -x "Annotation=bro.activate=127.0.0.1:$port:$port/tcp" "$QUADLET_DIR/$p.container"
  # quadlet passes it on to podman, so the hook will see the container
  run_cmd 0 as_user "$RIG_USER" "$QUADLET" -dryrun -user
  assert_output --partial "--annotation bro.activate=127.0.0.1:$port:$port/tcp"

  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$p-activator.socket"
  wait_for_port "$port"

  run_cmd 0 activate --remove "$p"
  assert_line "removed $UNIT_DIR/$p-activator.socket"
  assert_line "removed $UNIT_DIR/$p-activator.service"
  assert_line "removed the annotation bro-activate added to $QUADLET_DIR/$p.container"
  run_cmd 0 unit_state "$p-activator.socket"
  assert_output inactive
  [[ ! -e $UNIT_DIR/$p-activator.socket && ! -e $UNIT_DIR/$p-activator.service ]]
  [[ ! -L $UNIT_DIR/sockets.target.wants/$p-activator.socket ]]
  run_cmd 0 cat "$QUADLET_DIR/$p.container"
  assert_output "$q"
  [[ -z $(ss -Hltn "sport = :$port") ]]
  # twice is fine
  run_cmd 0 activate --remove "$p"
  assert_line "nothing to remove for $p in $UNIT_DIR"
}

@test "bro-activate refuses to overwrite a unit; --force replaces it" {
  local p=$BRO_TEST_PREFIX
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$BBOX_IMAGE
Annotation=bro.activate=$(free_port)"
  run_cmd 0 activate "$p"
  run_cmd 1 activate --idle-stop 1m "$p"
  assert_output "bro-activate: write unit $UNIT_DIR/$p-activator.socket: file already exists (use --force to replace, --remove to delete)"
  # the refused write added nothing (the first one wrote the start-limit
  # drop-in only)
  [[ ! -e $UNIT_DIR/$p.service.d/50-$p-activator-idle-stop.conf ]]
  run_cmd 0 activate --force --idle-stop 1m "$p"
  run_cmd 0 grep -c -- "--exit-idle-time 60s" "$UNIT_DIR/$p-activator.service"
  # a unit the user wrote is never removed
  write_user_unit "$RIG_USER" "$p-activator.service" "[Service]
ExecStart=/bin/true"
  run_cmd 1 activate --remove "$p"
  assert_output "bro-activate: remove unit $UNIT_DIR/$p-activator.service: not written by bro-activate (first line is not \"# Generated by bro-activate…\")"
  [[ -e $UNIT_DIR/$p-activator.socket ]]
}

@test "bro-activate --dry-run prints the units and writes nothing" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$BBOX_IMAGE"
  run_cmd 0 activate --dry-run --listen "127.0.0.1:$port" --target 80 --service-name web "$p"
  assert_line "# $UNIT_DIR/$p-web.socket"
  assert_line "ListenStream=127.0.0.1:$port"
  assert_line "# $UNIT_DIR/$p-web.service"
  assert_line --partial "--target 127.0.0.1:80"
  assert_line "Annotation=bro.activate=127.0.0.1:$port:80/tcp"
  [[ ! -e $UNIT_DIR/$p-web.socket && ! -e $UNIT_DIR/$p-web.service ]]
  run_cmd 1 grep -q bro.activate "$QUADLET_DIR/$p.container"
}

@test "bro-activate names the missing quadlet, the bad name and the bad port" {
  local p=$BRO_TEST_PREFIX
  run_cmd 1 activate "$p-missing"
  assert_output --regexp "^bro-activate: find $p-missing\.container in .*$QUADLET_DIR.*: quadlet not found$"
  run_cmd 1 activate ../etc
  assert_output 'bro-activate: invalid quadlet name "../etc": contains "/"; want 1-200 characters of A-Z a-z 0-9 _ . : -, not starting with - or ., no / and no ..'
  run_cmd 1 activate 'a b'
  assert_output "bro-activate: invalid quadlet name \"a b\": contains ' '; want 1-200 characters of A-Z a-z 0-9 _ . : -, not starting with - or ., no / and no .."
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$BBOX_IMAGE
Annotation=bro.activate=99999"
  run_cmd 1 activate "$p"
  assert_output "bro-activate: read ports of $QUADLET_DIR/$p.container: invalid bro.activate=\"99999\": container port 99999 is out of range 1-65535; want [[ip:]hostPort:]containerPort[/tcp|/udp], ports 1-65535, IPv6 in brackets"
  run_cmd 1 activate --target 80 --target 81 --listen 1 "$p"
  assert_output "bro-activate: invalid flags: --listen given 1 times and --target 2 times; want them in pairs, or only one kind"
}
