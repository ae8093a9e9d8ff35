#!/usr/bin/env bats
# 620-handoff: bro.mode=handoff end to end, rootless under the user manager:
# the container's own bind() receives the systemd socket through seccomp user
# notification (bro-hook precreate writes the filter, bro-proxy --handoff is
# the agent), so the server accepts on the host socket and nothing relays.

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

# ho_pg: pg_quadlet in handoff mode, through the generator: daemon-reload
# is the only step.
ho_pg() {
  PG_MODE=handoff pg_quadlet
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$PG_NAME-activator.socket"
  wait_for_port "$PG_PORT"
}

# ho_quadlet NAME PORT[/udp] [LINES...]: a Network=none handoff quadlet of
# RIG_USER for the busybox image, named NAME (container too), each LINE added.
ho_quadlet() {
  local name=$1 port=$2
  shift 2
  write_quadlet "$RIG_USER" "$name.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$name
Network=none
Annotation=bro.activate=$port
Annotation=bro.mode=handoff
$(printf '%s\n' "$@")
EOF
}

# ho_web: busybox httpd (it binds ::) in handoff mode, without Notify=.
# Its shell binds a second port (nc -l) whenever /tmp/rebind appears: a
# process under the container's first seccomp filter, for the agent restart.
ho_web() {
  WEB_NAME=$BRO_TEST_PREFIX-web
  WEB_PORT=$(free_port)
  WEB_OTHER=$(free_port)
  ho_quadlet "$WEB_NAME" "$WEB_PORT" \
    "Exec=sh -c 'mkdir -p /www && echo handoff-ok >/www/index.html && httpd -p $WEB_PORT -h /www && while sleep 0.1; do if [ -e /tmp/rebind ]; then rm /tmp/rebind; nc -l -p $WEB_OTHER </dev/null & fi; done'"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$WEB_NAME-activator.socket"
  wait_for_port "$WEB_PORT"
}

# activator_log_of NAME: the journal of NAME-activator.service.
activator_log_of() { user_journalctl -o cat -u "$1-activator.service"; }

# socket_ino PORT: the inode of the listening socket on 127.0.0.1:PORT.
socket_ino() { ss -Hltne "sport = :$1" | grep -o 'ino:[0-9]*' | head -1; }

@test "handoff: PostgreSQL (Network=none) serves psql on the host socket itself, sees the client's real port, keeps the Backlog" {
  ho_pg
  local ino
  ino=$(socket_ino "$PG_PORT")
  [[ -n $ino ]] || fail "no listening socket on $PG_PORT"
  run_cmd 0 pg_states
  assert_output "inactive active inactive"

  # the first connection starts everything and is served, not refused as
  # "starting up": accept() is held until the unit is ready
  run_cmd 0 pg_sql "select 'first try'"
  assert_output "first try"

  # the client's own port reaches the server: no relay, no PROXY protocol
  pg_sql "select inet_client_port(), pg_sleep(1.5)" >"$BATS_TEST_TMPDIR/port" &
  run_bg_pid=$!
  echo "$run_bg_pid" >>"$BATS_TEST_TMPDIR/.bro-pids"
  local peer=
  for _ in $(seq 50); do
    peer=$(ss -Htn state established "dport = :$PG_PORT" | awk '{print $3}' | sed 's/.*://' | head -1)
    [[ -n $peer ]] && break
    sleep 0.05
  done
  wait "$run_bg_pid"
  run_cmd 0 cat "$BATS_TEST_TMPDIR/port"
  assert_output "$peer|"

  # the postmaster holds the very socket systemd listens on, and the server
  # side of a connection belongs to postgres, never to bro-proxy
  run_cmd 0 ss -Hltnpe "sport = :$PG_PORT"
  assert_output --partial "$ino"
  assert_output --partial '"postgres"'
  assert_output --regexp 'LISTEN +[0-9]+ +4096 '
  pg_sql "select pg_sleep(1)" >/dev/null &
  echo $! >>"$BATS_TEST_TMPDIR/.bro-pids"
  for _ in $(seq 50); do
    # until a process owns it (accepted, not just queued)
    run ss -Htnp state established "sport = :$PG_PORT"
    [[ $output == *users:* ]] && break
    sleep 0.05
  done
  assert_output --partial '"postgres"'
  refute_output --partial bro-proxy

  # the second bind of the port (::) went on normally, inside the container
  # Notify=: the server polled on a placeholder until it was ready, then its
  # accept() was turned to the host socket
  run_cmd 0 activator_log
  assert_output --partial 'gave bind() a placeholder of the host socket until the server is ready'
  assert_output --partial 'the server is ready: replaced the placeholder by the host socket'
  assert_output --partial 'host socket held by another process; this bind proceeds normally'
}

@test "handoff: 20 simultaneous cold clients are all served by one container start" {
  ho_pg
  pg_cold_clients 20
  run_cmd 0 activator_log
  [[ $(grep -c "serving the container's seccomp listener" <<<"$output") == 1 ]] ||
    fail "want exactly one container start"
}

@test "handoff: a restart and a kill -9 of the container; the next client is served each time; crossuser too" {
  ho_pg
  run_cmd 0 pg_sql "create table lab (note text); insert into lab values ('kept')"
  run_cmd 0 user_systemctl restart "$PG_NAME.service"
  run_cmd 0 pg_sql "select note from lab"
  assert_output "kept"

  run_user_podman 0 kill -s KILL "$PG_CTR"
  wait_unit_down "$PG_NAME-activator.service"
  run_cmd 0 pg_sql "select note from lab"
  assert_output "kept"

  # cross-over: another unprivileged user's psql through the same socket
  run_cmd 0 pg_sql -u "$CROSS_USER" "select current_user || ' via ' || host(inet_client_addr())"
  assert_output "postgres via 127.0.0.1"
}

@test "handoff: busybox httpd (binds ::) serves on the host socket; the agent killed with -9 gets the filter back from the fd store" {
  ho_web
  run_cmd 0 curl -sS -m 30 "http://127.0.0.1:$WEB_PORT/"
  assert_output "handoff-ok"
  run_cmd 0 ss -Hltnp "sport = :$WEB_PORT"
  assert_output --partial '"httpd"'

  local pid
  pid=$(user_systemctl show -p MainPID --value "$WEB_NAME-activator.service")
  [[ $pid -gt 0 ]] || fail "no agent running"
  kill -9 "$pid"
  for _ in $(seq 100); do
    local now
    now=$(user_systemctl show -p MainPID --value "$WEB_NAME-activator.service")
    [[ $now -gt 0 && $now != "$pid" ]] && break
    sleep 0.05
  done
  run_cmd 0 curl -sS -m 30 "http://127.0.0.1:$WEB_PORT/"
  assert_output "handoff-ok"
  run_cmd 0 activator_log_of "$WEB_NAME"
  assert_output --partial "serving a seccomp listener kept in the file descriptor store"

  # a process under the container's first filter binds another port after
  # the agent's restart: it proceeds (without the stored listener: ENOSYS)
  run_user_podman 0 exec "$WEB_NAME" touch /tmp/rebind
  local listening=
  for _ in $(seq 50); do
    listening=$(user_podman exec "$WEB_NAME" netstat -ltn 2>/dev/null | grep ":$WEB_OTHER " || true)
    [[ -n $listening ]] && break
    sleep 0.1
  done
  [[ -n $listening ]] || fail "nc in the container could not bind $WEB_OTHER after the agent restart"
  # and the container holds only the socket its annotation names: the
  # other port is its own, in its own network namespace
  run_cmd 0 ss -Hltn "sport = :$WEB_OTHER"
  assert_output ""
}

@test "handoff: the agent's socket is private to the user; a container without bro.mode=handoff gets nothing" {
  ho_web
  run_cmd 0 curl -sS -m 30 "http://127.0.0.1:$WEB_PORT/"
  local sock=/run/user/$(id -u "$RIG_USER")/bro/handoff/$WEB_NAME.sock
  run_cmd 0 stat -c '%a %U' "$sock"
  assert_output "600 $RIG_USER"
  run_cmd 0 stat -c '%a' "$(dirname "$sock")"
  assert_output "700"
  run as_user "$CROSS_USER" nc -U -N "$sock" </dev/null
  (( status != 0 )) || fail "$CROSS_USER could connect to $sock"

  # a plain container binding the same port number: its own socket, in its
  # own namespace, and the host socket stays with the web container
  run_user_podman 0 run -d --name "$BRO_TEST_PREFIX-plain" --network none "$BBOX_IMAGE" nc -l -p "$WEB_PORT"
  run_cmd 0 ss -Hltnp "sport = :$WEB_PORT"
  assert_output --partial '"httpd"'
  refute_output --partial '"nc"'
}

@test "handoff: refusals name the value and the rule, and write nothing" {
  local q=$BRO_TEST_PREFIX-r units=/home/$RIG_USER/.config/systemd/user
  write_quadlet "$RIG_USER" "$q.container" <<EOF
[Container]
Image=$BBOX_IMAGE
Network=none
Annotation=bro.activate=18099
EOF
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --mode handoff "$q"
  assert_output --partial "add Annotation=bro.mode=handoff"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --mode zero-hop "$q"
  assert_output --partial 'want proxy, direct or handoff'

  ho_quadlet "$q" 18099
  # a runtime that does not send seccomp listeners: Podman's own report of it
  local rt
  rt=$(user_tmpdir "$RIG_USER")
  printf '#!/bin/sh\necho "runc version 1.0.3"\n' | as_user "$RIG_USER" tee "$rt/oldrunc" >/dev/null
  printf '[engine]\nruntime = "oldrunc"\n[engine.runtimes]\noldrunc = ["%s"]\n' "$rt/oldrunc" |
    as_user "$RIG_USER" tee "$rt/containers.conf" >/dev/null
  as_user "$RIG_USER" chmod 755 "$rt/oldrunc"
  run_cmd 1 as_user "$RIG_USER" env CONTAINERS_CONF="$rt/containers.conf" "$BRO_ACTIVATE" "$q"
  assert_output --partial "OCI runtime runc 1.0.3 is too old: want runc ≥ 1.1.0"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --target-unix /run/x.sock "$q"
  assert_output --partial "cannot use a unix socket target"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --listen 18099 --target 80 "$q"
  assert_output --partial "both must be the same"

  ho_quadlet "$q" 18099 SeccompProfile=unconfined
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$q"
  assert_output --partial "SeccompProfile=unconfined"

  ho_quadlet "$q" 18099 PodmanArgs=--privileged
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$q"
  assert_output --partial "--privileged switches seccomp off"
  # the generator logs and skips it: no units for it
  run_cmd 0 user_systemctl daemon-reload
  run user_systemctl cat "$q-activator.service"
  (( status != 0 )) || fail "the generator wrote units for a refused quadlet"
  run_cmd 0 ls "$units"
  refute_output --partial "$q"
}

@test "handoff: bro-activate --mode handoff writes the units and --remove takes them back" {
  local q=$BRO_TEST_PREFIX-a units=/home/$RIG_USER/.config/systemd/user port
  port=$(free_port)
  ho_quadlet "$q" "$port" "Exec=httpd -f -p $port -h /etc"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" --mode handoff "$q"
  assert_output --partial "$q-activator-seccomp.socket"
  assert_output --partial "50-$q-activator-handoff.conf"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$q-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/"
  assert_output 404
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" --remove "$q"
  run_cmd 0 ls -R "$units"
  refute_output --partial "$q"
  run ss -Hltn "sport = :$port"
  assert_output ""
}

@test "handoff: bro.idle-stop stops the agent and the container after the last connection; the next client starts both" {
  WEB_NAME=$BRO_TEST_PREFIX-idle
  WEB_PORT=$(free_port)
  ho_quadlet "$WEB_NAME" "$WEB_PORT" Annotation=bro.idle-stop=2s \
    "Exec=sh -c 'mkdir -p /www && echo idle-ok >/www/index.html && exec httpd -f -p $WEB_PORT -h /www'"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$WEB_NAME-activator.socket"
  wait_for_port "$WEB_PORT"
  run_cmd 0 curl -sS -m 30 "http://127.0.0.1:$WEB_PORT/"
  assert_output "idle-ok"
  # a connection held open keeps both up past the idle time
  exec 5<>"/dev/tcp/127.0.0.1/$WEB_PORT"
  sleep 3.5
  run_cmd 0 unit_state "$WEB_NAME.service"
  assert_output active
  exec 5>&-
  wait_unit_down "$WEB_NAME-activator.service" 30
  wait_unit_down "$WEB_NAME.service" 30
  run_cmd 0 activator_log_of "$WEB_NAME"
  assert_output --partial "no connection for the idle time"
  run_cmd 0 curl -sS -m 30 "http://127.0.0.1:$WEB_PORT/"
  assert_output "idle-ok"
}

@test "handoff: UDP, dnsmasq's own bind() receives the host datagram socket; the first query is answered" {
  requires cmd:dig cmd:dnsmasq
  IMAGE=localhost/bro-dnsmasq:latest bash "$BRO_REPO/test/images/dnsmasq.sh" \
    runuser -u "$RIG_USER" -- env XDG_RUNTIME_DIR="/run/user/$(id -u "$RIG_USER")" "$PODMAN" >/dev/null
  local q=$BRO_TEST_PREFIX-dns port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$q.container" <<EOF2
[Container]
Image=localhost/bro-dnsmasq:latest
ContainerName=$q
Network=none
Annotation=bro.activate=$port/udp
Annotation=bro.mode=handoff
Exec=--no-daemon --no-resolv --no-hosts --port=$port --listen-address=127.0.0.1 --bind-interfaces --user=root --address=/bro.test/127.0.0.7
EOF2
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$q-activator.socket"
  run_cmd 0 dig +short +tries=1 +time=30 -p "$port" @127.0.0.1 bro.test
  assert_output "127.0.0.7"
  run_cmd 0 ss -Hlunp "sport = :$port"
  assert_output --partial '"dnsmasq"'
  run_cmd 0 activator_log_of "$q"
  assert_output --partial 'type=datagram'
}

@test "handoff: a quadlet's own SeccompProfile= is kept: the hook turns the filter Podman built from it" {
  local q=$BRO_TEST_PREFIX-sp port prof
  port=$(free_port)
  # the default profile without mkdir: the container's own rule must survive
  prof=$(user_tmpdir "$RIG_USER")/profile.json
  jq '.syscalls |= map(.names -= ["mkdir", "mkdirat"])' /usr/share/containers/seccomp.json |
    as_user "$RIG_USER" tee "$prof" >/dev/null
  ho_quadlet "$q" "$port" "SeccompProfile=$prof" \
    "Exec=sh -c 'mkdir /x 2>/tmp/mkdir.err; exec httpd -f -p $port -h /etc'"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl start "$q-activator.socket"
  wait_for_port "$port"
  run_cmd 0 curl -sS -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/"
  assert_output 404
  run_cmd 0 ss -Hltnp "sport = :$port"
  assert_output --partial '"httpd"'
  # the profile's own refusal (its defaultErrnoRet is ENOSYS); without it
  # mkdir would have worked
  run_user_podman 0 exec "$q" cat /tmp/mkdir.err
  assert_output --partial "can't create directory '/x': Function not implemented"
}
