#!/usr/bin/env bats
# 230-unix: unix sockets on both ends. The host side listens on a path
# (SocketMode=/SocketGroup= decide who may connect, as the lab describes for
# cross-user access on one host); the container side is PostgreSQL's own
# unix socket, resolved inside the container's filesystem by bro-proxy, with
# no nsenter or podman exec by hand.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

@test "unix on both ends: a group member connects through the host path, postgres sees a local client" {
  # An unprivileged user's manager can set SocketGroup= only to a group of
  # its own; across users, a directory shared with the other user's group
  # (set up by an administrator, here by the test) holds a 0666 socket.
  local dir group
  group=$(id -gn "$CROSS_USER")
  dir=$(user_tmpdir "$RIG_USER")/sock
  as_user "$RIG_USER" mkdir -p "$dir"
  chgrp "$group" "$dir"
  chmod 0750 "$dir"
  pg_quadlet Notify=true
  pg_activate --listen-unix "$dir/.s.PGSQL.5432" --socket-mode 0666 \
    --target-unix /run/postgresql/.s.PGSQL.5432
  run_cmd 0 stat -c '%a %U' "$dir/.s.PGSQL.5432"
  assert_output "666 $RIG_USER"
  # the second user, a member of the group, through the path; the server
  # sees a unix-socket client (inet_client_addr() is NULL): the proxy
  # reached /run/postgresql inside the container
  run_cmd 0 as_user "$CROSS_USER" env PGCONNECT_TIMEOUT=60 "$PSQL" -X -q -A -t -h "$dir" -p 5432 -U postgres \
    -c "select coalesce(inet_client_addr()::text, 'local') || ' ' || current_user"
  assert_output "local postgres"
  # the TCP port leads to the same unix socket
  run_cmd 0 env PGCONNECT_TIMEOUT=60 "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres \
    -c "select coalesce(inet_client_addr()::text, 'local')"
  assert_output "local"
  # a user outside the group is refused by the file's permissions
  run_cmd '!' runuser -u nobody -- env PGCONNECT_TIMEOUT=5 "$PSQL" -X -h "$dir" -p 5432 -U postgres -c 'select 1'
  assert_output --partial "Permission denied"
}
