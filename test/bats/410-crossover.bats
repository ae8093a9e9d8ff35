#!/usr/bin/env bats
# 410-crossover: containers of different unprivileged users depend on each
# other through the socket (networking lab, sections 1.1 and 3.6): the second
# user's connection starts the first user's container.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

@test "cross-over: a second user's psql starts the first user's container" {
  pg_quadlet Notify=true
  pg_activate
  run_cmd 0 pg_states
  assert_output "inactive active inactive"
  run_cmd 0 pg_sql -u "$CROSS_USER" "select current_user || ' via ' || inet_server_addr()"
  assert_output "postgres via 127.0.0.1/32"
  run_cmd 0 pg_states
  assert_output "active active active"
}

@test "cross-over: a container of the second user (slirp4netns) reaches the socket" {
  pg_quadlet Notify=true
  pg_activate
  # The raw PostgreSQL probe: an 8-byte SSLRequest, answered 'N' (no SSL) by
  # the server itself. 10.0.2.2 is the host's loopback seen from slirp4netns
  # with allow_host_loopback; the container runs as the second user.
  run_cmd 0 as_user "$CROSS_USER" "$PODMAN" run --rm --name "$BRO_TEST_PREFIX-client" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" \
    sh -c "printf '\\000\\000\\000\\010\\004\\322\\026\\057' | nc -w 30 10.0.2.2 $PG_PORT | head -c 1"
  assert_output "N"
  run_cmd 0 pg_states
  assert_output "active active active"
}
