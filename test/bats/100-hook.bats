#!/usr/bin/env bats
# 100-hook: bro-hook records annotated containers, from a real hooks.d,
# under real Podman (rootful with --hooks-dir, rootless through quadlet and
# the installed hooks.d), and removes the records when they stop.

load helpers


setup_file() {
  # The installed tree, as `make install` lays it out, in a temp prefix: the
  # tests point Podman at this hooks.d, never at the system directories.
  INST=$BATS_FILE_TMPDIR/inst
  make -s -C "$BRO_REPO" install PREFIX="$INST" HOOKSDIR="$INST/hooks.d" >/dev/null
  chmod -R a+rX "$BATS_FILE_TMPDIR"
  export INST
}

# hooks_dir_with_state DIR: a copy of the installed hooks.d whose hook
# writes records to DIR (BRO_STATE_DIR in the hook's env).
hooks_dir_with_state() {
  local d=$BATS_TEST_TMPDIR/hooks.d f
  mkdir -p "$d"
  for f in "$INST"/hooks.d/*.json; do
    sed "s|\"PATH=|\"BRO_STATE_DIR=$1\", \"PATH=|" "$f" >"$d/${f##*/}"
  done
  echo "$d"
}

@test "make install renders one hooks.d file per stage with the installed path" {
  run_cmd 0 ls "$INST/hooks.d"
  assert_output "50-bro-activate-poststop.json
50-bro-activate-precreate.json
50-bro-activate-prestart.json"
  run_cmd 0 cat "$INST/hooks.d/50-bro-activate-prestart.json"
  assert_output --partial "\"path\": \"$INST/libexec/brothaman/bro-hook\""
  assert_output --partial '"args": ["bro-hook", "prestart"]'
  assert_output --partial '"^bro\\.activate$": ".*"'
  [[ -x $INST/libexec/brothaman/bro-hook ]]
}

@test "rootful: a record in /run/bro while the container runs, gone after podman rm" {
  requires root
  run_podman 0 --hooks-dir "$INST/hooks.d" run -d --name "$BRO_TEST_PREFIX" --network none \
    --annotation bro.activate=8080 "$BBOX_IMAGE" sleep 300
  local id=${lines[-1]}
  local rec=/run/bro/$id.json
  [[ -f $rec ]] || fail "no record $rec"
  run_cmd 0 stat -c '%a %U' /run/bro "$rec"
  assert_output "700 root
600 root"
  run_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX"
  local pid=$output
  run_cmd 0 jq -r '[.id, .name, (.pid|tostring), .netns, (.uid|tostring), (.ports|join(","))] | join(" ")' "$rec"
  assert_output "$id $BRO_TEST_PREFIX $pid /proc/$pid/ns/net 0 127.0.0.1:8080:8080/tcp"
  # the recorded netns identity is the container's
  run_cmd 0 jq -r '.netnsIno' "$rec"
  assert_output "$(stat -L -c %i "/proc/$pid/ns/net")"
  run_cmd 0 jq -r '.pidStart' "$rec"
  assert_output "$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat")"
  run_podman 0 --hooks-dir "$INST/hooks.d" rm -f -t 0 "$BRO_TEST_PREFIX"
  [[ ! -e $rec ]] || fail "record $rec left behind after podman rm"
}

@test "rootful: BRO_STATE_DIR in the hook's env moves the records" {
  requires root
  local state=$BATS_TEST_TMPDIR/state hd
  hd=$(hooks_dir_with_state "$state")
  run_podman 0 --hooks-dir "$hd" run -d --name "$BRO_TEST_PREFIX" --network none \
    --annotation "bro.activate=127.0.0.1:15432:5432 53/udp" "$BBOX_IMAGE" sleep 300
  local id=${lines[-1]}
  run_cmd 0 jq -r '.ports | join(",")' "$state/$id.json"
  assert_output "127.0.0.1:15432:5432/tcp,127.0.0.1:53:53/udp"
  run_cmd 0 stat -c %a "$state"
  assert_output 700
  run_podman 0 --hooks-dir "$hd" rm -f -t 0 "$BRO_TEST_PREFIX"
  run_cmd 0 ls -A "$state"
  assert_output ""
}

@test "rootful: a container without the annotation gets no record" {
  requires root
  local state=$BATS_TEST_TMPDIR/state hd
  hd=$(hooks_dir_with_state "$state")
  run_podman 0 --hooks-dir "$hd" run --rm --name "$BRO_TEST_PREFIX" --network none "$BBOX_IMAGE" true
  [[ ! -e $state ]] || fail "the hook ran for a container without bro.activate"
}

@test "rootful: a malformed annotation stops podman run with one clear line" {
  requires root
  local state=$BATS_TEST_TMPDIR/state hd
  hd=$(hooks_dir_with_state "$state")
  run_podman '!' --hooks-dir "$hd" run --rm --name "$BRO_TEST_PREFIX" --network none \
    --annotation bro.activate=80:abc "$BBOX_IMAGE" echo should-not-run
  assert_output --partial 'bro-hook: invalid bro.activate=\"80:abc\": container port \"abc\" is not a number; want [[ip:]hostPort:]containerPort[/tcp|/udp], ports 1-65535, IPv6 in brackets'
  refute_output --partial should-not-run
  # nothing recorded: the directory was never even created
  [[ ! -e $state ]] || { ls -la "$state"; fail "the failed hook left $state behind"; }
}

@test "rootful: Network=host is refused (the proxy would dial its own socket)" {
  requires root
  local state=$BATS_TEST_TMPDIR/state hd
  hd=$(hooks_dir_with_state "$state")
  run_podman '!' --hooks-dir "$hd" run --rm --name "$BRO_TEST_PREFIX" --network host \
    --annotation bro.activate=8080 "$BBOX_IMAGE" true
  assert_output --partial "shares the host's network namespace (Network=host?): bro.activate needs a container with its own"
}

@test "rootless quadlet: the installed hook records name, unit and uid in /run/user/UID/bro" {
  requires root user_manager bro
  [[ -f /usr/share/containers/oci/hooks.d/50-bro-activate-prestart.json ]] ||
    fail "the project is not installed into the system hooks.d (make install)"
  local uid; uid=$(id -u "$RIG_USER")
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-ctr
Network=none
Annotation=bro.activate=8080
Exec=sleep 300
EOF
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$BRO_TEST_PREFIX.service"
  run_user_podman 0 inspect -f '{{.Id}} {{.State.Pid}}' "$BRO_TEST_PREFIX-ctr"
  local id=${output% *} pid=${output#* }
  local rec=/run/user/$uid/bro/$id.json
  run_cmd 0 stat -c '%a %U' "/run/user/$uid/bro" "$rec"
  assert_output "700 $RIG_USER
600 $RIG_USER"
  run_cmd 0 jq -r '[.name, .unit, (.uid|tostring), (.pid|tostring)] | join(" ")' "$rec"
  assert_output "$BRO_TEST_PREFIX-ctr $BRO_TEST_PREFIX.service $uid $pid"
  run_cmd 0 user_systemctl stop "$BRO_TEST_PREFIX.service"
  [[ ! -e $rec ]] || fail "record $rec left behind after the unit stopped"
}
