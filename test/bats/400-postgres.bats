#!/usr/bin/env bats
# 400-postgres: the lab's story (networking lab, section 1) with the
# project's commands: a Network=none PostgreSQL quadlet with
# Annotation=bro.activate, started by the first psql connection.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

@test "PostgreSQL on demand: only the socket listens until psql connects, data survives a restart" {
  pg_quadlet Notify=true
  pg_activate
  run_cmd 0 pg_states
  assert_output "inactive active inactive"

  # the first connection starts the container, and succeeds on the first try
  run_cmd 0 pg_sql "select 'first try'"
  assert_output "first try"
  run_cmd 0 pg_states
  assert_output "active active active"
  run_user_podman 0 ps --filter "name=^$PG_CTR\$" --format '{{.Names}}'
  assert_output "$PG_CTR"

  run_cmd 0 pg_sql "create table lab (note text); insert into lab values ('kept')"
  run_cmd 0 user_systemctl restart "$PG_NAME.service"
  run_cmd 0 pg_sql "select note from lab"
  assert_output "kept"

  run_cmd 0 activator_log
  assert_output --partial "container found; entered its network namespace"
  assert_output --regexp 'msg="backend ready"'
}

@test "Simultaneous cold start: 20 clients at once, all served, one container start" {
  pg_quadlet Notify=true
  pg_activate
  pg_cold_clients 20
  # one container: one record found, one container ever created under this name
  run_cmd 0 activator_log
  [[ $(grep -c 'container found; entered its network namespace' <<<"$output") == 1 ]] ||
    fail "want exactly one container start"
  run_cmd 0 user_systemctl show -p NRestarts --value "$PG_NAME.service"
  assert_output 0
}
