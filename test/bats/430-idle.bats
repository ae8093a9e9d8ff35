#!/usr/bin/env bats
# 430-idle: bro-activate --idle-stop: bro-proxy exits after the idle time, the
# container stops with it (StopWhenUnneeded=), the next connection starts both.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

@test "--idle-stop 2s: the container stops after the last client leaves and starts again for the next" {
  pg_quadlet Notify=true
  pg_activate --idle-stop 2s
  run_cmd 0 pg_sql "select 'first'"
  assert_output first
  # the client has gone: after 2 s idle bro-proxy exits, then the container stops
  wait_unit_state "$PG_NAME-activator.service" inactive 30
  wait_unit_state "$PG_NAME.service" inactive 30
  run_cmd 0 pg_states
  assert_output "inactive active inactive"
  run_cmd 0 pg_sql "select 'again'"
  assert_output again
  run_cmd 0 pg_states
  assert_output "active active active"
  run_cmd 0 activator_log
  assert_output --partial 'msg="idle: exiting"'
}
