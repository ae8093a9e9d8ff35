# shellcheck shell=bash
# pg.bash - the lab's PostgreSQL quadlet behind bro-activate, for the 4xx
# suites (load helpers first, then pg).

PG_PASSWORD=password
PSQL=${PSQL:-/usr/lib/postgresql/15/bin/psql}
[[ -x $PSQL ]] || PSQL=psql

# pg_quadlet [EXTRA-LINES]: write $BRO_TEST_PREFIX-pg.container for RIG_USER,
# Network=none, a data volume, the annotation on a free loopback port; sets
# PG_NAME (quadlet and unit name), PG_CTR (container name), PG_PORT, PG_DATA.
# PG_MODE=handoff: bro.mode=handoff, Notify=true, the server on PG_PORT
# itself (host and container port are one) and on every address (0.0.0.0
# and ::, two binds of the port).
pg_quadlet() {
  PG_NAME=$BRO_TEST_PREFIX-pg
  PG_CTR=$BRO_TEST_PREFIX-db
  PG_PORT=$(free_port)
  PG_DATA=$(user_tmpdir "$RIG_USER")/pgdata
  as_user "$RIG_USER" mkdir -p "$PG_DATA"
  write_quadlet "$RIG_USER" "$PG_NAME.container" <<EOF
[Unit]
Description=PostgreSQL on demand ($BRO_TEST_PREFIX)

[Container]
Image=$PG_IMAGE
ContainerName=$PG_CTR
Environment=POSTGRES_PASSWORD=$PG_PASSWORD
Volume=$PG_DATA:/var/lib/postgresql/data
Network=none
$(if [[ ${PG_MODE:-} == handoff ]]; then
  printf '%s\n' "Annotation=bro.activate=$PG_PORT" Annotation=bro.mode=handoff Notify=true \
    "Exec=-p $PG_PORT" "Environment=POSTGRES_LISTEN_ADDRESSES=*"
else
  echo "Annotation=bro.activate=127.0.0.1:$PG_PORT:5432"
fi)
${1:-}
EOF
}

# pg_cold_clients N: N psql clients at once, each selecting its number;
# fails unless every one is answered with it.
pg_cold_clients() {
  local n=$1 i pids=() fails=0
  for i in $(seq "$n"); do
    pg_sql "select $i" >"$BATS_TEST_TMPDIR/client.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { fails=$((fails + 1)); cat "$BATS_TEST_TMPDIR/client.$((i + 1))"; }
  done
  (( fails == 0 )) || fail "$fails of $n clients failed" || return
  for i in $(seq "$n"); do
    run_cmd 0 cat "$BATS_TEST_TMPDIR/client.$i"
    assert_output "$i" || return
  done
}

# pg_activate [BRO-ACTIVATE-FLAGS...]: bro-activate the quadlet, reload,
# enable and start the socket, as the README tells users to.
pg_activate() {
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$@" "$PG_NAME"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$PG_NAME-activator.socket"
  wait_for_port "$PG_PORT"
}

# pg_states: the three units' ActiveState, in the lab's order: container
# service, activator socket, activator service.
pg_states() {
  local u out=()
  for u in "$PG_NAME.service" "$PG_NAME-activator.socket" "$PG_NAME-activator.service"; do
    out+=("$(unit_state "$u")")
  done
  echo "${out[*]}"
}

# pg_sql [-u USER] SQL: run SQL through the socket with psql (as root, or USER).
pg_sql() {
  local user=
  if [[ $1 == -u ]]; then user=$2; shift 2; fi
  local cmd=(env PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=60 "$PSQL" -X -q -A -t
             -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$1")
  if [[ -n $user ]]; then as_user "$user" "${cmd[@]}"; else "${cmd[@]}"; fi
}

# activator_log: the activator's journal (bro-proxy's lines).
activator_log() { user_journalctl -o cat -u "$PG_NAME-activator.service"; }

# wait_unit_down UNIT [TIMEOUT=30]: until the user unit is inactive or failed.
wait_unit_down() {
  local deadline=$(( SECONDS + ${2:-30} )) s
  while (( SECONDS < deadline )); do
    s=$(unit_state "$1")
    [[ $s == inactive || $s == failed ]] && return 0
    sleep 0.2
  done
  fail "$1 is still $s after ${2:-30}s" || return
}
