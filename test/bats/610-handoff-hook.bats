#!/usr/bin/env bats
# 610-handoff-hook: bro-hook's precreate stage under real rootless Podman,
# with the installed hook and a private hooks.d rendered from the template:
# bro.mode=handoff gets the seccomp filter whose listener is the unit's agent,
# is refused where no agent could receive it, and every other container
# passes through untouched. (620-handoff runs the real agent end to end.)
#
# Podman drops a precreate hook's stderr and prints only "executing
# [bro-hook precreate]: exit status 1"; the hook's line is read from the
# journal (SYSLOG_IDENTIFIER=bro-hook).

load helpers

setup() {
  bro_setup
  requires root bro cmd:python3
  # hooks.d for the installed hook, one file per stage as make install
  # renders them, with the records and agent sockets in this test's state dir
  local d stage
  d=$(user_tmpdir "$RIG_USER")
  HD=$d/hooks.d
  STATE=$d/state
  as_user "$RIG_USER" mkdir -p "$HD" "$STATE/handoff"
  chmod 0700 "$STATE"
  for stage in precreate prestart poststop; do
    sed -e "s|@HOOK@|$BRO_HOOK|" -e "s|@STAGE@|$stage|" \
        -e "s|\"PATH=|\"BRO_STATE_DIR=$STATE\", \"PATH=|" \
        "$BRO_REPO/hooks.d/50-bro-activate.json.in" >"$HD/50-bro-activate-$stage.json"
  done
  chown -R "$RIG_USER:" "$HD"
  SINCE=$(date +%s)
}

teardown() {
  bro_teardown
}

# hook_said TEXT: the hook sent the line TEXT to the journal since SINCE.
# (Other suites' hooks may log meanwhile: one line of them must be TEXT.)
hook_said() {
  retry 20 0.1 bash -c 'journalctl --no-pager -q -o cat -t bro-hook --since "@$1" | grep -qxF -- "$2"' bash "$SINCE" "$1"
  run_cmd 0 journalctl --no-pager -q -o cat -t bro-hook --since "@$SINCE"
  assert_line "$1"
}

# refused ARGS...: podman run ARGS from a shell fails at precreate, the
# container never runs and nothing of it is left (no container, no record).
refused() {
  run_user_podman '!' --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
    --annotation bro.activate=8080 "$@" "$BBOX_IMAGE" echo should-not-run
  assert_output --partial "executing [bro-hook precreate]: exit status 1"
  refute_output --partial should-not-run
  run_user_podman 0 ps -a --format '{{.Names}}' --filter "name=^$BRO_TEST_PREFIX-ctr\$"
  assert_output ""
  run_cmd 0 find "$STATE" -name '*.json'
  assert_output ""
}

@test "handoff hook: podman run from a shell is refused (no unit, so no agent for its seccomp listener)" {
  refused --annotation bro.mode=handoff
  hook_said "bro.mode=handoff: the container must be started by its systemd unit (a quadlet with bro.activate), not from a shell: no agent would receive its seccomp listener"
}

@test "handoff hook: --privileged and seccomp=unconfined are refused by name" {
  refused --annotation bro.mode=handoff --privileged
  hook_said "bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"
  sleep 1 # journalctl --since has a resolution of seconds
  SINCE=$(date +%s)
  refused --annotation bro.mode=handoff --security-opt seccomp=unconfined
  hook_said "bro.mode=handoff: the container has no seccomp filter (--privileged or seccomp=unconfined switch seccomp off, and with it the handoff)"
}

@test "handoff hook: an invalid bro.mode is refused, naming the value and the rule" {
  refused --annotation bro.mode=bogus
  hook_said 'invalid bro.mode="bogus": want proxy, direct or handoff'
}

@test "handoff hook: bro.activate without bro.mode (and with proxy or direct) starts as before, under its seccomp filter" {
  local mode
  for mode in "" proxy direct; do
    run_user_podman 0 --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
      --annotation bro.activate=8080 ${mode:+--annotation bro.mode=$mode} \
      "$BBOX_IMAGE" sh -c 'grep "^Seccomp:" /proc/self/status; echo ran'
    assert_output $'Seccomp:\t2\nran'
  done
}

@test "handoff hook: a container without bro.activate is untouched, bro.mode=handoff or not" {
  run_user_podman 0 --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
    --annotation bro.mode=handoff "$BBOX_IMAGE" echo ran
  assert_output ran
  run_user_podman 0 --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
    "$BBOX_IMAGE" echo ran
  assert_output ran
  [[ -z $(ls -A "$STATE/handoff") && -z $(find "$STATE" -name '*.json') ]] || fail "the hook ran for a container without bro.activate"
}

# A stand-in for the agent: it takes one message from runc at the listener
# path (runc's seccomp agent message: fds, pid, metadata, and the OCI state
# under "state"), writes what it got as JSON and closes everything, so that
# the container's notified calls fail with ENOSYS from then on.
standin_agent() {
  cat >"$1" <<'EOF'
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1 << 16, 4)
st = json.loads(msg)
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump({"fds": st.get("fds"), "metadata": st.get("metadata"), "received": len(fds),
               "mode": st.get("state", {}).get("annotations", {}).get("bro.mode")}, f)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
EOF
}

@test "handoff hook: started by its unit, the filter reaches runc: the listener at the unit's path gets the notify fd and the unit's metadata, and bind() is notified" {
  local unit=$BRO_TEST_PREFIX-svc d out
  d=$(user_tmpdir "$RIG_USER")
  out=$d/agent.json
  standin_agent "$d/agent.py"
  run_bg as_user "$RIG_USER" python3 "$d/agent.py" "$STATE/handoff/$unit.sock" "$out" >/dev/null
  retry 50 0.1 test -S "$STATE/handoff/$unit.sock"
  # as quadlet does: podman is the main process of NAME.service
  run_cmd 0 as_user "$RIG_USER" systemd-run --user --quiet --wait --collect --pipe --unit="$unit" \
    "$PODMAN" --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
    --annotation bro.activate=8080 --annotation bro.mode=handoff \
    "$BBOX_IMAGE" sh -c 'sleep 1; nc -l -p 8080 </dev/null; echo ran'
  # the stand-in is gone once the container binds: ENOSYS, as after an agent's death
  assert_output --partial "Function not implemented"
  assert_output --partial ran
  run_cmd 0 jq -c . "$out"
  assert_output "{\"fds\":[\"seccompFd\"],\"metadata\":\"bro-handoff unit=$unit.service\",\"received\":1,\"mode\":\"handoff\"}"
}

@test "handoff hook: started by a unit that has no agent socket, refused; the line is in the unit's own journal" {
  local unit=$BRO_TEST_PREFIX-svc
  run_cmd '!' as_user "$RIG_USER" systemd-run --user --quiet --wait --collect --pipe --unit="$unit" \
    "$PODMAN" --hooks-dir "$HD" run --rm --name "$BRO_TEST_PREFIX-ctr" --network none \
    --annotation bro.activate=8080 --annotation bro.mode=handoff "$BBOX_IMAGE" echo should-not-run
  assert_output --partial "executing [bro-hook precreate]: exit status 1"
  refute_output --partial should-not-run
  local want="bro.mode=handoff: no agent socket at $STATE/handoff/$unit.sock for $unit.service (run bro-activate --mode handoff for it, or daemon-reload after adding bro.mode=handoff to its quadlet)"
  hook_said "$want"
  run_cmd 0 journalctl --no-pager -q -o cat -t bro-hook --since "@$SINCE" _SYSTEMD_USER_UNIT="$unit.service"
  assert_output "$want"
}
