#!/usr/bin/env bats
# 450-never-dark: a socket stays up whatever happens behind it. Activations
# faster than systemd's default start limit (5 in 10 s) and trigger limit,
# and a container whose server exits at once: its clients are closed, the
# socket keeps listening, and once the quadlet is fixed the next connection
# is served, without reset-failed. Proxy mode (plain and Notify=, where the
# activator is bound to the container) and direct mode.

load helpers
load testserver
load pg

setup() {
  bro_setup
  requires root user_manager bro
  build_testserver_image
}

teardown() { bro_teardown; }

# ts_quadlet NAME PORT [EXEC]: a Network=none quadlet of the test server,
# bro.activate on 127.0.0.1:PORT -> 8080; EXEC (default: serve 8080) is its
# command line. Rewriting it with another EXEC is how a test breaks or
# fixes the server.
ts_quadlet() {
  write_quadlet "$RIG_USER" "$1.container" <<EOF
[Container]
Image=$TESTSERVER_IMAGE
ContainerName=$1
Network=none
Annotation=bro.activate=127.0.0.1:$2:8080
Exec=${3:---listen 127.0.0.1:8080}
EOF
}

# never_failed UNIT: the socket is active (listening, or running: its
# service runs), and has never failed since it started (a failed socket
# stays failed until reset-failed).
never_failed() {
  run_cmd 0 user_systemctl show -p ActiveState,SubState,Result "$1"
  assert_line ActiveState=active
  assert_line --regexp '^SubState=(listening|running)$'
  assert_line Result=success
}

# closed_not_hung PORT [MAX=100]: a client of PORT is closed (reset, EOF)
# within MAX seconds instead of waiting for ever; prints how long it took.
closed_not_hung() {
  local t0=$SECONDS
  run ask "$1" "anyone?" "${2:-100}"
  (( status != 124 )) || fail "the client was left hanging for ${2:-100}s"
  (( status != 0 )) || fail "a broken server answered: $output"
  echo "# client closed after $(( SECONDS - t0 ))s (status $status)"
}

# container_starts UNIT: how many times the container's unit ran podman run
# (each prints the new container's id to the unit's journal).
container_starts() {
  user_journalctl -o cat -u "$1" | grep -cE '^[0-9a-f]{64}$' || true
}

# starts_are UNIT N: the container's unit ran podman run N times.
starts_are() { [[ $(container_starts "$1") == "$2" ]]; }

# densest_10s TIMES...: the most of TIMES (seconds, EPOCHREALTIME) that fall
# within one 10-second window.
densest_10s() {
  printf '%s\n' "$@" | sort -n | awk '{ t[NR] = $1 } END {
    for (i = 1; i <= NR; i++) { n = 0; for (j = i; j <= NR && t[j] < t[i] + 10; j++) n++; if (n > m) m = n }
    print m + 0 }'
}

# fast_enough TIMES...: more activations within 10 s than systemd's default
# start limit lets through (5 in 10 s), so the old units would have failed.
# No bound on the total time: the rig's user manager nests one cgroup level
# deeper at every container start (test/rig/README.md, --flatten-cgroups),
# and after many runs a start takes seconds instead of 0.2 s.
fast_enough() {
  local dense
  dense=$(densest_10s "$@")
  echo "# ${#@} activations in $(awk -v a="$1" -v b="${!#}" 'BEGIN { printf "%.1f", b - a }')s, $dense within 10s"
  (( dense > 5 )) || fail "only $dense activations within 10 s: not more than systemd's default start limit, the test proves nothing (rig too slow?)"
}

@test "30 activations in a row, each a fresh bro-proxy, every third a fresh container: all served, the socket never fails" {
  local p=$BRO_TEST_PREFIX port i times=() ids=()
  port=$(free_port)
  ts_quadlet "$p" "$port"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p-activator.socket"
  wait_for_port "$port"
  for i in $(seq 30); do
    times+=("$EPOCHREALTIME")
    run ask "$port" "round $i"
    [[ $status == 0 && $output == "testserver: round $i" ]] ||
      fail "activation $i: status $status, '$output'; socket: $(unit_state "$p-activator.socket")"
    ids+=("$(user_systemctl show -p InvocationID --value "$p-activator.service")")
    # bro-proxy stopped: the next connection is a new activation; every
    # third round the container goes too (podman's start is what makes a
    # round slow), and the activator starts it again
    if (( i % 3 == 0 )); then
      user_systemctl stop "$p-activator.service" "$p.service" 2>/dev/null
    else
      user_systemctl stop "$p-activator.service" 2>/dev/null
    fi
  done
  fast_enough "${times[@]}"
  [[ $(printf '%s\n' "${ids[@]}" | sort -u | wc -l) == 30 ]] || fail "want 30 distinct bro-proxy runs, got: ${ids[*]}"
  never_failed "$p-activator.socket"
  run_cmd 0 ask "$port" "after"
  assert_output "testserver: after"
  # the container ran at rounds 1, 4, ..., 28 and for "after"
  retry 10 0.5 starts_are "$p.service" 11
}

@test "direct mode: 30 activations in a row, each a fresh container: all served, the socket never fails" {
  local p=$BRO_TEST_PREFIX port i times=()
  port=$(free_port)
  ts_quadlet "$p" "$port"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p.socket"
  wait_for_port "$port"
  for i in $(seq 30); do
    times+=("$EPOCHREALTIME")
    run ask "$port" "round $i"
    [[ $status == 0 && $output == "testserver: round $i" ]] ||
      fail "activation $i: status $status, '$output'; socket: $(unit_state "$p.socket")"
    user_systemctl stop "$p.service" 2>/dev/null
  done
  # A direct activation is a whole container start, which a rig that ran
  # many tests makes slow (see fast_enough): the rate beyond the container's
  # default start limit is proved by the crash-loop test below instead.
  densest_10s "${times[@]}" | sed 's/^/# activations within 10 s: /'
  # the journal may lag a little behind the last start
  retry 10 0.5 starts_are "$p.service" 30
  never_failed "$p.socket"
}

@test "a server that exits at once: clients closed, the socket stays, the fixed quadlet is served without reset-failed" {
  local p=$BRO_TEST_PREFIX port i pids=() status
  port=$(free_port)
  # the server refuses its command line: the container exits at once, at
  # every start bro-proxy makes (--start-unit)
  ts_quadlet "$p" "$port" "--no-such-flag"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p-activator.socket"
  wait_for_port "$port"
  # seven clients at once: each is held for the container, then closed
  for i in $(seq 6); do
    ask "$port" "client $i" 100 >"$BATS_TEST_TMPDIR/client$i.log" 2>&1 3>&- &
    pids+=("$!")
  done
  closed_not_hung "$port"
  for i in "${!pids[@]}"; do
    status=0
    wait "${pids[$i]}" || status=$?
    (( status != 124 )) || fail "client $((i + 1)) was left hanging"
    (( status != 0 )) || fail "client $((i + 1)) got an answer from a broken server: $(cat "$BATS_TEST_TMPDIR/client$((i + 1)).log")"
  done
  never_failed "$p-activator.socket"
  (( $(container_starts "$p.service") >= 3 )) || fail "bro-proxy did not keep starting the container"
  # seven clients closed: the journal holds a few such lines, not seven
  run_cmd 0 user_journalctl -o cat -u "$p-activator.service"
  local closed
  closed=$(grep -c 'msg="backend unreachable; closing client"' <<<"$output" || true)
  (( closed >= 1 && closed <= 4 )) || fail "want 1-4 'closing client' lines for 7 clients (rate-limited), got $closed"

  # fixed: the quadlet rewritten, daemon-reload, and the next client is
  # served; nothing was reset by hand
  ts_quadlet "$p" "$port"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 ask "$port" "fixed" 60
  assert_output "testserver: fixed"
  never_failed "$p-activator.socket"
  run_cmd 0 user_systemctl show -p NRestarts --value "$p-activator.service"
}

@test "Notify= (the activator bound to the container): a server that exits at once, clients closed at once, then fixed" {
  pg_quadlet Notify=true
  local good=$BATS_TEST_TMPDIR/good.container starts
  cp "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/containers/systemd/$PG_NAME.container" "$good"
  # the same quadlet, but the server exits at once without saying READY: the
  # container's unit fails to start, so the activator (BindsTo=) never runs
  sed 's|^Image=.*|Image='"$BBOX_IMAGE"'\nExec=false|' "$good" | write_quadlet "$RIG_USER" "$PG_NAME.container"
  pg_activate
  closed_not_hung "$PG_PORT" 20
  closed_not_hung "$PG_PORT" 20
  # one container start per client, no loop (FlushPending=yes): none while
  # no client comes
  starts=$(container_starts "$PG_NAME.service")
  (( starts >= 1 && starts <= 4 )) || fail "want 1-4 container starts for 2 clients, got $starts"
  sleep 3
  [[ $(container_starts "$PG_NAME.service") == "$starts" ]] || fail "the container keeps being started without clients"
  never_failed "$PG_NAME-activator.socket"

  write_quadlet "$RIG_USER" "$PG_NAME.container" <"$good"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 pg_sql "select 'fixed'"
  assert_output fixed
  never_failed "$PG_NAME-activator.socket"
}

@test "direct mode: a server that exits at once, clients closed at once, the socket stays, then fixed" {
  local p=$BRO_TEST_PREFIX port i starts times=()
  port=$(free_port)
  ts_quadlet "$p" "$port" "--no-such-flag"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$p.socket"
  wait_for_port "$port"
  # more clients than systemd's default start limit of the container (5 in
  # 10 s) lets through
  for i in $(seq 8); do
    times+=("$EPOCHREALTIME")
    closed_not_hung "$port" 20
  done
  fast_enough "${times[@]}"
  starts=$(container_starts "$p.service")
  # about one start per client: a client that arrives while a start is under
  # way is closed by it, so 8 clients may take 7. More than 5 proves the
  # container's own start limit (5 in 10 s) does not stop them.
  (( starts >= 6 && starts <= 12 )) || fail "want about one container start per client (6-12 for 8), got $starts"
  sleep 3
  [[ $(container_starts "$p.service") == "$starts" ]] || fail "the container keeps being started without clients"
  never_failed "$p.socket"

  ts_quadlet "$p" "$port"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 ask "$port" "fixed"
  assert_output "testserver: fixed"
  never_failed "$p.socket"
}
