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
  #    (no Restart=); the activator is bound to it and stops too, and the
  #    next connection starts both again
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
  # with Notify= the activator's socket has FlushPending=yes (the unit's
  # comment says why): a client that arrives before systemd has seen the
  # death is closed with the queue. One that arrives after is held until the
  # restart: wait for systemd to notice.
  main_pid_is_not() { [[ $(user_systemctl show -p MainPID --value "$1") != "$2" ]]; }
  retry 100 0.05 main_pid_is_not "$PG_NAME-activator.service" "$proxy"
  listening || fail "socket stopped listening after bro-proxy was killed"
  run_cmd 0 pg_sql "select count(*) from t"
  assert_output 3
  run_cmd 0 user_systemctl show -p MainPID --value "$PG_NAME-activator.service"
  [[ $output != "$proxy" && $output -gt 0 ]] || fail "bro-proxy was not restarted (MainPID $output)"
}

@test "without Notify=: kill -9 of the container, bro-proxy follows and starts the unit again" {
  # a server that is ready when it listens: busybox httpd
  local port www; port=$(free_port); www=$(user_tmpdir "$RIG_USER")
  as_user "$RIG_USER" sh -c "echo hello > $www/index.html"
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX-web.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-web
Network=none
Volume=$www:/www:ro
Annotation=bro.activate=127.0.0.1:$port:8080
Exec=httpd -f -p 127.0.0.1:8080 -h /www
EOF
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$BRO_TEST_PREFIX-web"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$BRO_TEST_PREFIX-web-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS --max-time 30 "http://127.0.0.1:$port/"
  assert_output hello
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX-web"
  kill -9 "$output"
  wait_unit_down "$BRO_TEST_PREFIX-web.service"
  # the proxy kept running and starts the unit for the next client
  run_cmd 0 unit_state "$BRO_TEST_PREFIX-web-activator.service"
  assert_output active
  run_cmd 0 curl -sS --max-time 30 "http://127.0.0.1:$port/"
  assert_output hello
  run_cmd 0 user_journalctl -o cat -u "$BRO_TEST_PREFIX-web-activator.service"
  assert_output --partial "container not running: started its unit"
  assert_output --partial "container gone; waiting for it to start again"
}
