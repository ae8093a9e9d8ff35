#!/usr/bin/env bats
# 420-restart: the container restarted, the container's process killed, the
# proxy killed: the next connection succeeds each time, and the socket never
# stops listening.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

# listening: systemd holds the socket, whatever happens to the services.
listening() { [[ -n $(ss -Hltn "sport = :$PG_PORT") ]]; }

@test "restart, kill -9 of the container, kill -9 of bro-proxy: the next connection succeeds each time" {
  pg_quadlet Notify=true
  pg_activate
  run_cmd 0 pg_sql "create table t (n int); insert into t values (1)"

  # 1. systemctl --user restart of the container's unit
  run_cmd 0 user_systemctl restart "$PG_NAME.service"
  listening || fail "socket stopped listening after a restart"
  run_cmd 0 pg_sql "insert into t values (2); select count(*) from t"
  assert_output 2

  # 2. kill -9 of the container's main process: nothing restarts the quadlet
  #    (no Restart=); bro-proxy --start-unit does, at the next connection
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$PG_CTR"
  local pid=$output
  kill -9 "$pid"
  wait_unit_down "$PG_NAME.service"
  listening || fail "socket stopped listening after the container was killed"
  run_cmd 0 pg_sql "insert into t values (3); select count(*) from t"
  assert_output 3

  # 3. kill -9 of bro-proxy: Restart=on-failure brings it back, and until
  #    then systemd's socket holds the clients
  local proxy
  proxy=$(user_systemctl show -p MainPID --value "$PG_NAME-activator.service")
  [[ $proxy -gt 0 ]] || fail "no bro-proxy main pid"
  kill -9 "$proxy"
  listening || fail "socket stopped listening after bro-proxy was killed"
  run_cmd 0 pg_sql "select count(*) from t"
  assert_output 3
  run_cmd 0 user_systemctl show -p MainPID --value "$PG_NAME-activator.service"
  [[ $output != "$proxy" && $output -gt 0 ]] || fail "bro-proxy was not restarted (MainPID $output)"
  run_cmd 0 activator_log
  assert_output --partial "container not running: started its unit"
}
