# shellcheck shell=bash disable=SC2034,SC2154 # bats reads lines and sets output, lines, status
# helpers.bash - shared by every Brothaman-Go bats suite (load helpers).
#
# Style of Podman's test/system and runc's tests/integration helpers:
# overridable binary paths, a logging run wrapper that checks the exit status
# (run_cmd / run_podman / run_user_podman), bats-assert assertions that print
# both sides, `requires`, `retry` for external state, a unique name prefix per
# test and a teardown that is safe to run twice.
#
# The suites run as root on the rig that test/rig/rig-up.sh builds: RIG_USER
# has a systemd --user manager, rootless Podman and the quadlet generator;
# CROSS_USER has rootless Podman and a user manager too (640-lab's reverse
# proxy runs there; no other suite uses it), THIRD_USER rootless Podman only
# (see test/rig/README.md).

# ------------------------------------------------------------------ binaries
# Every path can be overridden from the environment, e.g. to test a build
# tree without installing it: BRO_PROXY=$PWD/bin/bro-proxy bats test/bats
# The default is the Debian package's (/usr: make check installs it) when it
# is installed, else make install's (/usr/local); BRO_PREFIX picks one.
if [[ -z ${BRO_PREFIX:-} ]]; then
  BRO_PREFIX=/usr/local
  [[ -x /usr/bin/bro-proxy ]] && BRO_PREFIX=/usr
fi
BRO_PROXY=${BRO_PROXY:-$BRO_PREFIX/bin/bro-proxy}
BRO_ACTIVATE=${BRO_ACTIVATE:-$BRO_PREFIX/bin/bro-activate}
BRO_ACTIVATE_DIRECT=${BRO_ACTIVATE_DIRECT:-$BRO_PREFIX/bin/bro-activate-direct}
BRO_HOOK=${BRO_HOOK:-$BRO_PREFIX/libexec/brothaman/bro-hook}
BRO_USER_GENERATOR=${BRO_USER_GENERATOR:-$BRO_PREFIX/lib/systemd/user-generators/bro-generator}
PODMAN=${PODMAN:-podman}
SOCKET_ACTIVATE=${SOCKET_ACTIVATE:-systemd-socket-activate}
SOCKET_PROXYD=${SOCKET_PROXYD:-/lib/systemd/systemd-socket-proxyd}
QUADLET=${QUADLET:-/usr/lib/systemd/user-generators/podman-user-generator}
# Root's podman gets this OCI runtime (crun and plain runc fail on the rig
# machines, see test/rig/README.md). Set ROOT_RUNTIME= to use Podman's default.
ROOT_RUNTIME=${ROOT_RUNTIME-/usr/local/bin/runc-sandbox}

# the repository (bin/ holds what make build built) and its test tools
BRO_REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BROLOAD=${BROLOAD:-$BRO_REPO/bin/broload}

BBOX_IMAGE=${BBOX_IMAGE:-localhost/bbox:latest}
PG_IMAGE=${PG_IMAGE:-localhost/postgres:15}
RIG_USER=${RIG_USER:-lingeruser}
CROSS_USER=${CROSS_USER:-crossuser}
# Podman 5's user (test/rig/README.md): its `podman` and its user manager's
# are Podman 5. The 7xx suites make it their RIG_USER.
P5_USER=${P5_USER:-p5user}
# neither the lab's owner nor its proxy (640-lab): rootless Podman only
THIRD_USER=${THIRD_USER:-thirduser}
# seconds any single podman command may take before it is killed
BRO_TIMEOUT=${BRO_TIMEOUT:-120}

# ------------------------------------------------------- bats-assert/support
# Debian packages them in /usr/lib/bats (bats' default BATS_LIB_PATH);
# rig-up.sh installs them. They give assert_output, assert_line,
# assert_success, assert_failure, assert_equal, refute_*, fail.
if ! bats_load_library bats-support || ! bats_load_library bats-assert; then
  echo "helpers.bash: bats-support/bats-assert not found in BATS_LIB_PATH=${BATS_LIB_PATH:-}" \
       "(apt-get install bats-assert bats-support, or run test/rig/rig-up.sh)" >&2
  return 1
fi

# ------------------------------------------------------------- requirements
# requires FEATURE...: fail the test, naming what is missing, unless every
# FEATURE is there. Never a skip: the rig (test/rig/rig-up.sh, which make
# check runs first) provides all of them, so a missing one is a broken rig or
# a missing install step, and a skip would hide it.
#   root | rootless | user_manager | bro (the installed project) | cmd:NAME
requires() {
  local f why
  for f in "$@"; do
    why=
    case $f in
      root)         (( EUID == 0 )) || why="test requires root" ;;
      rootless)     (( EUID != 0 )) || why="test requires a non-root user" ;;
      user_manager) user_manager_ok || why="test requires the systemd --user manager of $RIG_USER" ;;
      bro)          [[ -x $BRO_PROXY && -x $BRO_ACTIVATE && -x $BRO_HOOK ]] ||
                      why="test requires the installed project ($BRO_PROXY, $BRO_ACTIVATE, $BRO_HOOK; make deb-install or make install)" ;;
      cmd:*)        command -v "${f#cmd:}" >/dev/null || why="test requires command ${f#cmd:}" ;;
      *)            fail "requires: unknown feature '$f'"; return ;;
    esac
    [[ -z $why ]] && continue
    fail "$why (run make check as root: it builds the rig and installs the project)"; return
  done
}

# ------------------------------------------------------------ running as users
# as_user USER CMD...: run CMD as USER with a clean environment, as a login
# would give it (test/rig/as-user.sh, shared with rig-up.sh and .ci/run).
# Pass variables with env: as_user U env X=1 CMD...
# shellcheck source=test/rig/as-user.sh
source "$BRO_REPO/test/rig/as-user.sh"

# RIG_USER's systemctl --user, podman and journal.
user_systemctl()  { as_user "$RIG_USER" systemctl --user "$@"; }
user_podman()     { as_user "$RIG_USER" "$PODMAN" "$@"; }
user_journalctl() { as_user "$RIG_USER" journalctl --user --no-pager "$@"; }

# user_manager_ok [USER]: the user's systemd --user answers on its bus.
user_manager_ok() {
  local s
  s=$(as_user "${1:-$RIG_USER}" systemctl --user is-system-running 2>/dev/null) || true
  [[ $s == running || $s == degraded || $s == starting || $s == initializing ]]
}

# ------------------------------------------------------------- run wrappers
# run_cmd [STATUS] CMD...: bats `run` that logs the command, its output and
# its exit status (bats shows them when the test fails) and checks STATUS:
# a number (default 0), '?' for any, '!' for any non-zero. Sets $output,
# $lines and $status for the assertions. CMD may be a shell function.
run_cmd() {
  local expect=0
  if [[ $1 =~ ^([0-9]+|[?!])$ ]]; then expect=$1; shift; fi
  _bro_run "$expect" '$' "$*" "$@"
}

# run_podman [STATUS] ARGS...: root's podman (with ROOT_RUNTIME), with a timeout.
run_podman() {
  local expect=0 rt=()
  if [[ $1 =~ ^([0-9]+|[?!])$ ]]; then expect=$1; shift; fi
  [[ -n $ROOT_RUNTIME ]] && rt=(--runtime "$ROOT_RUNTIME")
  _bro_run "$expect" '$' "podman $*" \
    timeout --foreground -v --kill-after=10 "$BRO_TIMEOUT" "$PODMAN" "${rt[@]}" "$@"
}

# run_user_podman [STATUS] ARGS...: RIG_USER's rootless podman, with a timeout.
run_user_podman() {
  local expect=0
  if [[ $1 =~ ^([0-9]+|[?!])$ ]]; then expect=$1; shift; fi
  _bro_run "$expect" "$RIG_USER\$" "podman $*" \
    as_user "$RIG_USER" timeout --foreground -v --kill-after=10 "$BRO_TIMEOUT" "$PODMAN" "$@"
}

# _bro_run STATUS PROMPT LABEL CMD...: the log line is "PROMPT LABEL".
_bro_run() {
  local expect=$1 prompt=$2 label=$3; shift 3
  printf '%s %s\n' "$prompt" "$label"
  run "$@"
  # Rootless podman warns on every run on hosts whose / is a private mount;
  # harmless for the bind mounts we use, and it would break exact matches.
  # Podman 5 warns on every command on cgroup v1 (the rig's hybrid layout).
  if [[ $output == *'is not a shared mount'* || $output == *'Using cgroups-v1 which is deprecated'* ]]; then
    output=$(grep -v -e 'is not a shared mount' -e 'Using cgroups-v1 which is deprecated' <<<"$output" || true)
    lines=()
    [[ -n $output ]] && mapfile -t lines <<<"$output"
  fi
  [[ -n $output ]] && printf '%s\n' "$output"
  local ok=1
  case $expect in
    '?') ;;
    '!') (( status != 0 )) || ok=0 ;;
    *)   (( status == expect )) || ok=0 ;;
  esac
  if (( status != 0 || ! ok )); then
    if (( ok )); then printf '[ rc=%d (expected) ]\n' "$status"
    else printf '[ rc=%d (** EXPECTED %s **) ]\n' "$status" "$expect"; fi
  fi
  (( status == 124 )) && printf '[ timed out after %ss ]\n' "$BRO_TIMEOUT"
  if (( ! ok )); then
    fail "exit status of '$label' is $status; expected $expect" || return
  fi
}

# retry ATTEMPTS DELAY CMD...: run CMD until it succeeds, at most ATTEMPTS
# times, DELAY seconds apart. For waiting on external state (a unit, a file,
# a listener) only; never to paper over a timing assertion.
retry() {
  local attempts=$1 delay=$2 i; shift 2
  for ((i = 0; i < attempts; i++)); do
    run "$@"
    (( status == 0 )) && return 0
    sleep "$delay"
  done
  fail "'$*' failed $attempts times (every ${delay}s); last status $status, output: $output" || return
}

# ---------------------------------------------------------------- ports
# free_port: print a 127.0.0.1 TCP/UDP port nobody uses. Picked below the
# kernel's ephemeral range, so no outgoing connection takes it meanwhile, and
# reserved for this bats run (parallel jobs, bats -j) by a directory.
free_port() {
  local lo port i
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  (( lo > 11000 )) || lo=32768
  for ((i = 0; i < 500; i++)); do
    port=$(( 10000 + RANDOM % (lo - 10000) ))
    [[ -z $(ss -Htuan "sport = :$port") ]] || continue
    mkdir "$BATS_RUN_TMPDIR/.port-$port" 2>/dev/null || continue
    echo "$port"
    return 0
  done
  fail "free_port: no free port found" || return
}

# wait_for_port PORT [TIMEOUT=10] [tcp|udp]: wait until something listens on
# PORT (any address). Looks with ss and never connects: a connection to a
# socket unit's port would activate its service.
wait_for_port() {
  local port=$1 timeout=${2:-10} proto=${3:-tcp} flag=-t deadline
  [[ $proto == udp ]] && flag=-u
  deadline=$(( SECONDS + timeout ))
  while (( SECONDS < deadline )); do
    [[ -n $(ss -Hln "$flag" "sport = :$port") ]] && return 0
    sleep 0.1
  done
  fail "nothing listens on $proto port $port after ${timeout}s; listeners: $(ss -Hln "$flag" | awk '{print $4}' | xargs)" || return
}

# ---------------------------------------------------------------- units
# unit_state [-u USER] UNIT: the unit's ActiveState (active, inactive,
# activating, failed, ...).
unit_state() {
  local user=$RIG_USER
  if [[ $1 == -u ]]; then user=$2; shift 2; fi
  as_user "$user" systemctl --user show -p ActiveState --value "$1"
}

# wait_unit_state [-u USER] UNIT STATE [TIMEOUT=20]: wait until the user
# unit's ActiveState is STATE; on timeout show its status.
wait_unit_state() {
  local user=$RIG_USER
  if [[ $1 == -u ]]; then user=$2; shift 2; fi
  local unit=$1 want=$2 timeout=${3:-20} deadline cur=
  deadline=$(( SECONDS + timeout ))
  while (( SECONDS < deadline )); do
    cur=$(unit_state -u "$user" "$unit" 2>/dev/null) || true
    [[ $cur == "$want" ]] && return 0
    sleep 0.2
  done
  as_user "$user" systemctl --user status --no-pager -l "$unit" || true
  fail "$user's $unit is '$cur' after ${timeout}s; expected '$want'" || return
}

# --------------------------------------------------- files of the users
# user_tmpdir USER: print a directory owned by USER inside $BATS_TEST_TMPDIR
# (volumes, client files). bats makes its temp dirs 0700 root, so the
# parents get o+x (traverse, not list); bats removes the tree after the run.
user_tmpdir() {
  local user=$1 d=$BATS_TEST_TMPDIR/$1 p
  if [[ ! -d $d ]]; then
    p=$BATS_TEST_TMPDIR
    while [[ $p != / && $p != "$BATS_TMPDIR" ]]; do chmod o+x "$p"; p=$(dirname "$p"); done
    install -d -o "$user" -g "$user" -m 0755 "$d"
  fi
  echo "$d"
}

# _write_user_file USER DIR NAME [CONTENT]: write CONTENT (or stdin) to
# ~USER/DIR/NAME, owned by USER, and remember it for teardown.
_write_user_file() {
  local user=$1 dir=$2 name=$3 home path tmp
  home=$(getent passwd "$user" | cut -d: -f6)
  path=$home/$dir/$name
  tmp=$BATS_TEST_TMPDIR/.write.$$
  if (( $# >= 4 )); then printf '%s\n' "$4" >"$tmp"; else cat >"$tmp"; fi
  # each missing parent owned by the user, as the user would have made it
  as_user "$user" mkdir -p "$home/$dir"
  install -o "$user" -g "$user" -m 0644 "$tmp" "$path"
  rm -f "$tmp"
  printf '%s\t%s\n' "$user" "$path" >>"$BATS_TEST_TMPDIR/.bro-files"
  printf '# wrote %s\n' "$path"
}

# write_quadlet USER NAME [CONTENT]: a quadlet file (NAME.container,
# NAME.network, ...) in ~USER/.config/containers/systemd; CONTENT or stdin.
# Run daemon-reload afterwards. Name it "$BRO_TEST_PREFIX..." so that
# teardown finds everything generated from it.
write_quadlet() { _write_user_file "$1" .config/containers/systemd "${@:2}"; }

# write_user_unit USER NAME [CONTENT]: a unit in ~USER/.config/systemd/user.
write_user_unit() { _write_user_file "$1" .config/systemd/user "${@:2}"; }

# -------------------------------------------------------- background jobs
# run_bg CMD...: start CMD in the background (output to
# $BATS_TEST_TMPDIR/bg.PID.log) and remember its pid for teardown; prints
# the pid. fd 3 is closed, or bats would wait for the job to end.
run_bg() {
  local log pid
  # The file exists before the job starts: the job's redirection happens in
  # the child, and a rename racing it would lose the log (or fail the test
  # and leave the job running with its pid unrecorded).
  log=$(mktemp "$BATS_TEST_TMPDIR/bg.XXXXXX")
  "$@" </dev/null >>"$log" 2>&1 3>&- &
  pid=$!
  echo "$pid" >>"$BATS_TEST_TMPDIR/.bro-pids"
  mv "$log" "$BATS_TEST_TMPDIR/bg.$pid.log"
  echo "$pid"
}

# descendant PID REGEXP [TIMEOUT=10]: the pid of the one process below PID
# (at any depth) whose command line matches the extended REGEXP. Finds only
# what this test started, never another suite's or the demo's processes.
descendant() {
  local root=$1 re=$2 deadline=$(( SECONDS + ${3:-10} )) found p
  while :; do
    found=()
    for p in $(_descendants "$root"); do
      tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -Eq -- "$re" && found+=("$p")
    done
    (( ${#found[@]} == 1 )) && { echo "${found[0]}"; return 0; }
    (( SECONDS < deadline )) || break
    sleep 0.1
  done
  fail "descendant $root '$re': want one process, found ${#found[@]} (${found[*]:-none}) among: $(_descendants "$root" | xargs)" || return
}

_descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do echo "$child"; _descendants "$child"; done
}

# --------------------------------------------------------- setup/teardown
# bro_setup: a name prefix unique to this test (units, containers, quadlets,
# networks), short and valid everywhere a unit or container name is.
bro_setup() {
  # the rig's v1 cgroups nest one level per container start (--cgroups=split);
  # a whole run would pass PATH_MAX: flatten between tests
  local v1
  for v1 in brotest brotest5 brotestx; do
    if (( EUID == 0 )) && [[ -d /sys/fs/cgroup/pids/$v1/runtime ]]; then
      V1_CGROUP=$v1 bash "$BRO_REPO/test/rig/flatten-cgroups.sh" >/dev/null
    fi
  done
  BRO_TEST_PREFIX=bt${BATS_SUITE_TEST_NUMBER:-0}-$(printf '%04x%04x' "$RANDOM" "$RANDOM")
  export BRO_TEST_PREFIX
  # the reverse: this test's files and pids, for teardown
  : >"$BATS_TEST_TMPDIR/.bro-files"
  : >"$BATS_TEST_TMPDIR/.bro-pids"
}

# bro_teardown: undo what the test made, whether it passed or not. Every step
# tolerates a missing object, so running it twice (or after a setup that
# failed halfway) is harmless.
bro_teardown() {
  [[ -n ${BRO_TEST_PREFIX:-} ]] || return 0
  local p=$BRO_TEST_PREFIX pid

  # On failure, the state the test left behind, before it is removed.
  if [[ -z ${BATS_TEST_COMPLETED:-} ]] && user_manager_ok; then
    local units
    units=$(user_systemctl list-units --all --no-pager --plain --no-legend "$p*" 2>/dev/null) || true
    if [[ -n $units ]]; then
      printf '# --- teardown: %s units of this test ---\n%s\n' "$RIG_USER's" "$units"
      # journalctl -u takes a glob
      user_journalctl -n 40 -o short-monotonic -u "$p*" 2>/dev/null || true
    fi
  fi

  # background jobs this test started (only those, by pid)
  if [[ -f $BATS_TEST_TMPDIR/.bro-pids ]]; then
    while read -r pid; do
      [[ -n $pid ]] && _kill_tree "$pid" && wait "$pid" 2>/dev/null
    done <"$BATS_TEST_TMPDIR/.bro-pids"
    : >"$BATS_TEST_TMPDIR/.bro-pids"
  fi

  # The users and root are independent: clean them in parallel (each podman
  # call costs a few hundred ms; teardown runs after every test).
  local u seen=' '
  for u in "$RIG_USER" "$CROSS_USER" "$P5_USER" "$THIRD_USER" ${P4_USER:+"$P4_USER"}; do
    [[ $seen == *" $u "* ]] && continue
    seen+="$u "
    _bro_user_clean "$u" &
  done
  _bro_podman_clean "$PODMAN" &
  wait
  : >"$BATS_TEST_TMPDIR/.bro-files" 2>/dev/null || true
  if [[ -n ${NETNS:-} ]]; then ip netns delete "$NETNS" 2>/dev/null || true; NETNS=; fi
}

# _bro_user_clean USER: stop USER's units named after the prefix, remove the
# files the test wrote and the unit files named after the prefix (units that
# bro-activate wrote, their .wants symlinks), reload, remove podman objects.
_bro_user_clean() {
  local user=$1 p=$BRO_TEST_PREFIX home units='' u f removed='' manager=0
  home=$(getent passwd "$user" | cut -d: -f6) || return 0
  user_manager_ok "$user" && manager=1
  if (( manager )); then
    units=$(as_user "$user" systemctl --user list-units --all --plain --no-legend "$p*" 2>/dev/null |
            awk '{print $1}') || true
    # shellcheck disable=SC2086 # one word per unit
    [[ -z $units ]] || as_user "$user" systemctl --user stop $units >/dev/null 2>&1 || true
  fi
  if [[ -f $BATS_TEST_TMPDIR/.bro-files ]]; then
    while IFS=$'\t' read -r u f; do
      [[ $u == "$user" && -e $f ]] && rm -f "$f" && removed=1
    done <"$BATS_TEST_TMPDIR/.bro-files"
  fi
  # -prune + rm -r: a drop-in directory (NAME.service.d/) goes with its files
  f=$(find "$home/.config/containers/systemd" "$home/.config/systemd/user" -maxdepth 2 \
           -name "$p*" -prune -print -exec rm -rf {} + 2>/dev/null) || true
  [[ -n $f ]] && removed=1
  # a reload costs ~0.4 s and reruns every generator: only when needed
  if (( manager )) && [[ -n $removed$units ]]; then
    as_user "$user" systemctl --user daemon-reload || true
    as_user "$user" systemctl --user reset-failed "$p*" 2>/dev/null || true
  fi
  _bro_podman_clean as_user "$user" "$PODMAN"
}

# make_netns: a network namespace of this test, named after its prefix, with
# loopback up, in $NETNS; bro_teardown deletes it.
make_netns() {
  NETNS=$BRO_TEST_PREFIX
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
}

# _kill_tree PID: end PID and every process below it, children first. A job
# started with run_bg as_user ... is a subshell whose child is runuser, whose
# child is the user's process: killing the subshell alone would leave them.
_kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do _kill_tree "$child"; done
  kill "$1" 2>/dev/null
  return 0
}

# _bro_podman_clean PODMAN-CMD...: remove containers, networks and volumes
# named after the prefix (quadlet names them systemd-NAME by default).
_bro_podman_clean() {
  local re="^(systemd-)?$BRO_TEST_PREFIX" ids
  ids=$("$@" ps -a -q --filter "name=$re" 2>/dev/null) || true
  # shellcheck disable=SC2086 # one word per id
  [[ -z $ids ]] || "$@" rm -f -t 0 $ids >/dev/null 2>&1 || true
  ids=$("$@" network ls -q --filter "name=$re" 2>/dev/null) || true
  # shellcheck disable=SC2086
  [[ -z $ids ]] || "$@" network rm -f $ids >/dev/null 2>&1 || true
  ids=$("$@" volume ls -q --filter "name=$re" 2>/dev/null) || true
  # shellcheck disable=SC2086
  [[ -z $ids ]] || "$@" volume rm -f $ids >/dev/null 2>&1 || true
}

# Defaults; a suite that needs more defines its own and calls these.
setup()    { bro_setup; }
teardown() { bro_teardown; }
