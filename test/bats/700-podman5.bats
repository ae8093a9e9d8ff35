#!/usr/bin/env bats
# 700-podman5: the core suites again, on Podman 5. P5_USER's `podman` and
# its user manager's are Podman 5 (test/rig/README.md, "The Podman 5 user"),
# so with P5_USER as this suite's RIG_USER every helper (write_quadlet,
# user_systemctl, pg_quadlet, unit_state...) acts on Podman 5: the hook,
# proxy mode, direct mode, handoff, PostgreSQL on demand, cross-over (also
# through pasta, Podman 5's rootless network), restart, idle stop, refusals.
# P4_USER (Debian's Podman 4.3) is the other side of the cross-over tests.

# bats sources this file again for every test, in processes that inherit
# the environment: when RIG_USER is exported (CI exports it), the line below
# would make the next test's P4_USER P5_USER. The first value is kept.
export P4_USER=${P4_USER:-${RIG_USER:-lingeruser}}
RIG_USER=${P5_USER:-p5user}

load helpers
load pg
load testserver

setup() {
  bro_setup
  requires root user_manager bro
}

# web_quadlet NAME PORT [LINES...]: busybox httpd on 127.0.0.1:8080 in a
# Network=none quadlet of RIG_USER, behind bro.activate=127.0.0.1:PORT:8080.
web_quadlet() {
  local name=$1 port=$2; shift 2
  write_quadlet "$RIG_USER" "$name.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$name
Network=none
Annotation=bro.activate=127.0.0.1:$port:8080
Exec=sh -c 'mkdir -p /www && echo podman5-ok >/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www'
$(printf '%s\n' "$@")
EOF
}

# pg_probe HOST PORT: a shell command for a busybox container that sends
# PostgreSQL's 8-byte SSLRequest to HOST:PORT and prints the server's
# one-byte answer ('N', no SSL) as soon as it comes. The server then waits
# for a startup packet (up to its authentication_timeout, 60 s), so nc is
# ended rather than waited for; a refused client's nc ends by itself. HOST
# may be a shell expression ($gw).
pg_probe() {
  printf '%s' "printf '\\000\\000\\000\\010\\004\\322\\026\\057' | nc -w 30 $1 $2 >/tmp/reply & nc=\$!
for i in \$(seq 300); do [ -s /tmp/reply ] && break; kill -0 \$nc 2>/dev/null || break; sleep 0.1; done
kill \$nc 2>/dev/null; head -c 1 /tmp/reply"
}

@test "podman 5: P5_USER's shell and user manager run Podman 5, and quadlet writes it into ExecStart=" {
  run_user_podman 0 --version
  assert_output --regexp '^podman version 5\.'
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" "[Container]
Image=$BBOX_IMAGE
Network=none
Exec=sleep 1"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl show -p ExecStart --value "$BRO_TEST_PREFIX.service"
  assert_output --regexp "path=/[^ ]*/podman ; argv\[\]=/[^ ]*/podman run "
  local podman=${output#*path=}; podman=${podman%% *}
  run_cmd 0 "$podman" --version
  assert_output --regexp '^podman version 5\.'
}

@test "podman 5 hook: a container from a shell is recorded (id, name, pid, netns, uid) and the record goes with it" {
  local uid; uid=$(id -u "$RIG_USER")
  run_user_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none \
    --annotation bro.activate=8080 "$BBOX_IMAGE" sleep 300
  local id=${lines[-1]} rec
  rec=/run/user/$uid/bro/$id.json
  [[ -f $rec ]] || fail "no record $rec"
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$BRO_TEST_PREFIX"
  local pid=$output
  run_cmd 0 jq -r '[.id, .name, (.pid|tostring), (.uid|tostring), (.ports|join(","))] | join(" ")' "$rec"
  assert_output "$id $BRO_TEST_PREFIX $pid $uid 127.0.0.1:8080:8080/tcp"
  run_cmd 0 jq -r '.netnsIno' "$rec"
  assert_output "$(stat -L -c %i "/proc/$pid/ns/net")"
  run_user_podman 0 rm -f -t 0 "$BRO_TEST_PREFIX"
  [[ ! -e $rec ]] || fail "record $rec left behind after podman rm"

  # --rm: Podman 5 lists it in volatile-containers.json, not containers.json
  run_user_podman 0 run -d --rm --name "$BRO_TEST_PREFIX-rm" --network none \
    --annotation bro.activate=8080 "$BBOX_IMAGE" sleep 300
  id=${lines[-1]}
  run_cmd 0 jq -r .name "/run/user/$uid/bro/$id.json"
  assert_output "$BRO_TEST_PREFIX-rm"
}

@test "podman 5 hook: a quadlet's record names its unit; Network=host and a bad annotation are refused" {
  local uid; uid=$(id -u "$RIG_USER")
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-ctr
Network=none
Annotation=bro.activate=8080
Exec=sleep 300
EOF
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$BRO_TEST_PREFIX.service"
  run_user_podman 0 inspect -f '{{.Id}} {{.State.Pid}}' "$BRO_TEST_PREFIX-ctr"
  local id=${output% *} pid=${output#* }
  run_cmd 0 jq -r '[.name, .unit, (.uid|tostring), (.pid|tostring)] | join(" ")' "/run/user/$uid/bro/$id.json"
  assert_output "$BRO_TEST_PREFIX-ctr $BRO_TEST_PREFIX.service $uid $pid"
  run_cmd 0 user_systemctl stop "$BRO_TEST_PREFIX.service"
  [[ ! -e /run/user/$uid/bro/$id.json ]] || fail "record left behind after the unit stopped"

  run_user_podman '!' run --rm --name "$BRO_TEST_PREFIX-host" --network host \
    --annotation bro.activate=8080 "$BBOX_IMAGE" true
  assert_output --partial "shares the host's network namespace (Network=host?): bro.activate needs a container with its own"
  run_user_podman '!' run --rm --name "$BRO_TEST_PREFIX-bad" --network none \
    --annotation bro.activate=80:abc "$BBOX_IMAGE" echo should-not-run
  assert_output --partial 'bro-hook: invalid bro.activate=\"80:abc\": container port \"abc\" is not a number'
  refute_output --partial should-not-run
}

@test "podman 5 proxy mode: a Network=none quadlet behind bro-activate starts on the first connection" {
  local name=$BRO_TEST_PREFIX-web port
  port=$(free_port)
  web_quadlet "$name" "$port"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$name"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$name-activator.socket"
  wait_for_port "$port"
  run_cmd 0 unit_state "$name.service"
  assert_output inactive
  run_cmd 0 curl -sS --max-time 30 "http://127.0.0.1:$port/"
  assert_output podman5-ok
  run_cmd 0 unit_state "$name.service"
  assert_output active
  run_cmd 0 user_journalctl -o cat -u "$name-activator.service"
  assert_output --partial "container found; entered its network namespace"
}

@test "podman 5 PostgreSQL on demand (generator route, Notify=): 20 cold clients, data across a restart" {
  pg_quadlet Notify=true
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$PG_NAME-activator.socket"
  wait_for_port "$PG_PORT"
  run_cmd 0 pg_states
  assert_output "inactive active inactive"
  pg_cold_clients 20
  run_cmd 0 pg_sql "create table lab (note text); insert into lab values ('kept')"
  run_cmd 0 user_systemctl restart "$PG_NAME.service"
  run_cmd 0 pg_sql "select note from lab"
  assert_output kept
  run_cmd 0 pg_states
  assert_output "active active active"
}

@test "podman 5 restart: kill -9 of the container and of bro-proxy; the next connection succeeds each time" {
  pg_quadlet Notify=true
  pg_activate
  run_cmd 0 pg_sql "create table t (n int); insert into t values (1)"
  run_user_podman 0 inspect -f '{{.State.Pid}}' "$PG_CTR"
  kill -9 "$output"
  wait_unit_down "$PG_NAME.service"
  run_cmd 0 pg_sql "insert into t values (2); select count(*) from t"
  assert_output 2
  local proxy
  proxy=$(user_systemctl show -p MainPID --value "$PG_NAME-activator.service")
  [[ $proxy -gt 0 ]] || fail "no bro-proxy main pid"
  kill -9 "$proxy"
  main_pid_is_not() { [[ $(user_systemctl show -p MainPID --value "$1") != "$2" ]]; }
  retry 100 0.05 main_pid_is_not "$PG_NAME-activator.service" "$proxy"
  run_cmd 0 pg_sql "select count(*) from t"
  assert_output 2
}

@test "podman 5 idle stop: the container stops after the idle time and starts again for the next client" {
  pg_quadlet Notify=true
  pg_activate --idle-stop 2s
  run_cmd 0 pg_sql "select 'first'"
  assert_output first
  wait_unit_state "$PG_NAME-activator.service" inactive 30
  wait_unit_state "$PG_NAME.service" inactive 30
  run_cmd 0 pg_sql "select 'again'"
  assert_output again
  run_cmd 0 activator_log
  assert_output --partial 'msg="idle: exiting"'
}

@test "podman 5 cross-over: Podman 4.3's user and its container reach P5_USER's socket, and P5_USER's pasta container reaches Podman 4.3's" {
  pg_quadlet Notify=true
  pg_activate
  run_cmd 0 pg_sql -u "$CROSS_USER" "select current_user || ' via ' || inet_server_addr()"
  assert_output "postgres via 127.0.0.1/32"
  # a slirp4netns container of Podman 4.3 (10.0.2.2 is the host's loopback)
  run_cmd 0 as_user "$P4_USER" "$PODMAN" run --rm --name "$BRO_TEST_PREFIX-c4" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" sh -c "$(pg_probe 10.0.2.2 "$PG_PORT")"
  assert_output N

  # the other way: Podman 4.3's PostgreSQL, P5_USER's client container on
  # pasta. Debian 12's pasta (2023-03) maps the gateway to the host's
  # loopback with --map-gw; Podman 5 passes --no-map-gw unless told.
  local p5_port=$PG_PORT
  RIG_USER=$P4_USER pg_quadlet Notify=true
  RIG_USER=$P4_USER pg_activate
  run_user_podman 0 run --rm --name "$BRO_TEST_PREFIX-c5" --network pasta:--map-gw "$BBOX_IMAGE" \
    sh -c "gw=\$(ip route | awk '/^default/{print \$3}'); $(pg_probe '$gw' "$PG_PORT")"
  assert_output N
  run_cmd 0 unit_state -u "$P4_USER" "$PG_NAME.service"
  assert_output active
  [[ $p5_port != "$PG_PORT" ]]
}

@test "podman 5 cross-over with bro.allow: P5_USER's pasta container is judged by P5_USER's uid, crossuser's is refused" {
  # Podman 4.3's PostgreSQL, open to P5_USER only: a connection through
  # pasta comes from the pasta process, which runs as P5_USER
  RIG_USER=$P4_USER pg_quadlet "Notify=true
Annotation=bro.allow=$P5_USER"
  RIG_USER=$P4_USER pg_activate
  run_cmd '?' as_user "$CROSS_USER" "$PODMAN" run --rm --name "$BRO_TEST_PREFIX-c4" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" sh -c "$(pg_probe 10.0.2.2 "$PG_PORT")"
  assert_output ""
  run_cmd 0 unit_state -u "$P4_USER" "$PG_NAME.service"
  assert_output inactive
  run_user_podman 0 run --rm --name "$BRO_TEST_PREFIX-c5" --network pasta:--map-gw "$BBOX_IMAGE" \
    sh -c "gw=\$(ip route | awk '/^default/{print \$3}'); $(pg_probe '$gw' "$PG_PORT")"
  assert_output N
  run_cmd 0 as_user "$P4_USER" journalctl --user --no-pager -o cat -u "$PG_NAME-activator.service"
  assert_output --partial "uid $(id -u "$CROSS_USER") is not allowed by bro.allow=$P5_USER"
}

@test "podman 5 direct mode: Podman 5 passes NAME.socket into the container (LISTEN_FDS), no bro-proxy" {
  build_testserver_image
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" "[Container]
Image=$TESTSERVER_IMAGE
ContainerName=$p
Network=none"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE_DIRECT" --listen "127.0.0.1:$port" "$p"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$p.socket"
  wait_for_port "$port"
  run_cmd 0 ask "$port" "whoami"
  assert_output --regexp "^testserver: pid=1 hostname=[0-9a-f]{12} activated=true$"
  run_user_podman 0 inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$p"
  assert_line LISTEN_FDS=1
  assert_line "LISTEN_FDNAMES=tcp-$port"
  run_cmd 0 user_systemctl stop "$p.service"
  run_cmd 0 ask "$port" "again"
  assert_output "testserver: again"
}

@test "podman 5 handoff (bro-activate --mode handoff): PostgreSQL's own bind() gets the host socket; restart and kill -9, crossuser too" {
  PG_MODE=handoff pg_quadlet
  # the command route: bro-activate asks `podman info` (Podman 5's) whether
  # the runtime sends seccomp listeners
  pg_activate --mode handoff
  run_cmd 0 pg_sql "select 'first try'"
  assert_output "first try"
  # the postmaster holds the very socket systemd listens on
  local ino
  ino=$(ss -Hltne "sport = :$PG_PORT" | grep -o 'ino:[0-9]*' | head -1)
  [[ -n $ino ]] || fail "no listening socket on $PG_PORT"
  run_cmd 0 ss -Hltnpe "sport = :$PG_PORT"
  assert_output --partial "$ino"
  assert_output --partial '"postgres"'
  run_cmd 0 activator_log
  assert_output --partial "serving the container's seccomp listener"
  run_cmd 0 pg_sql "create table lab (note text); insert into lab values ('kept')"
  run_cmd 0 user_systemctl restart "$PG_NAME.service"
  run_cmd 0 pg_sql "select note from lab"
  assert_output kept
  run_user_podman 0 kill -s KILL "$PG_CTR"
  wait_unit_down "$PG_NAME-activator.service"
  run_cmd 0 pg_sql -u "$CROSS_USER" "select note from lab"
  assert_output kept
}

@test "podman 5 refusals: a bad annotation in a quadlet stops the container, the hook's line in its journal; bro-activate refuses it first" {
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-ctr
Network=none
Annotation=bro.activate=8080/sctp
Exec=sleep 300
EOF
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$BRO_TEST_PREFIX"
  assert_output --partial 'invalid bro.activate="8080/sctp": protocol "sctp" is not tcp or udp'
  run_cmd 0 user_systemctl daemon-reload
  run_cmd '!' user_systemctl start "$BRO_TEST_PREFIX.service"
  run_user_podman 0 ps -a --filter "name=^$BRO_TEST_PREFIX-ctr\$" --filter status=running -q
  assert_output ""
  run_cmd 0 user_journalctl -o cat -u "$BRO_TEST_PREFIX.service"
  assert_output --partial 'bro-hook: invalid bro.activate=\"8080/sctp\": protocol \"sctp\" is not tcp or udp'
  run_cmd '!' as_user "$RIG_USER" "$BRO_ACTIVATE" "$BRO_TEST_PREFIX-nothere"
  assert_output --partial "$BRO_TEST_PREFIX-nothere.container"
}
