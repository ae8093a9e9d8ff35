#!/usr/bin/env bats
# 600-allow: who may connect (Annotation=bro.allow=…, bro-activate --allow).
# Real activators of the rig user: crossuser is let in, other users (nobody,
# root) are refused over TCP, UDP and a unix listener, and a refused client
# never starts the container; the owner always gets in; a remote client (in
# a network namespace of the test, over a veth pair) is judged by its
# address; clients that close at once and a flood of refused clients leave
# an allowed client served. The flood's timing is printed (# lines) for
# docs/bench.md, never asserted.

load helpers
load pg

DNS_IMAGE=localhost/bro-dnsmasq:latest
# a user the rule never names: uid 65534
OTHER_USER=nobody

setup() {
  bro_setup
  requires root user_manager bro cmd:nc
  UNIT_DIR=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user
}

teardown() {
  # bro_teardown's find does not descend into NAME.service.d of this test.
  [[ -n ${BRO_TEST_PREFIX:-} && -n ${UNIT_DIR:-} ]] && rm -rf "$UNIT_DIR/$BRO_TEST_PREFIX".service.d
  bro_teardown
}

# say USER NC-ARGS...: send "hello" as USER with OpenBSD nc and print what
# comes back (nothing when the proxy refuses: it resets the connection).
say() {
  local user=$1; shift
  as_user "$user" sh -c 'printf "hello\n" | exec nc -N -w 30 "$@"' sh "$@"
}

# echo_quadlet NAME PORT [LINE...]: a quadlet of the rig user whose
# container answers a TCP client's first line with that line and closes
# (busybox nc on its port 7), socket-activated on 127.0.0.1:PORT; extra
# LINEs go into [Container].
echo_quadlet() {
  local name=$1 port=$2; shift 2
  write_quadlet "$RIG_USER" "$name.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$name
Network=none
Exec=nc -ll -p 7 -e head -n 1
Annotation=bro.activate=127.0.0.1:$port:7
$(printf '%s\n' "$@")
EOF
}

# activate NAME ARGS...: bro-activate as the rig user, then the socket on.
activate() {
  local name=$1; shift
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$@" "$name"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 user_systemctl enable --now "$name-activator.socket"
}

# allow_log NAME: the activator's journal (bro-proxy's lines).
allow_log() { user_journalctl -o cat -u "$1-activator.service"; }

# log_has NAME TEXT: the activator's journal holds TEXT (for retry: the
# journal lags a little).
log_has() { allow_log "$1" | grep -qF -- "$2"; }

# refused_count NAME: bro-proxy's "N refused" from its STATUS=.
refused_count() {
  user_systemctl show -p StatusText --value "$1-activator.service" | sed -n 's/.* \([0-9]*\) refused.*/\1/p'
}

# refused_is NAME N: STATUS= says N refused (updated once a second).
refused_is() { [[ $(refused_count "$1") == "$2" ]]; }

@test "TCP: crossuser is served, others are refused and start nothing, the owner always gets in" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  activate "$p"
  run_cmd 0 grep -x "ExecStart=.* --allow $CROSS_USER .*" "$UNIT_DIR/$p-activator.service"
  run_cmd 0 grep -x "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK" "$UNIT_DIR/$p-activator.service"
  wait_for_port "$port"

  # refused first: the socket starts bro-proxy, bro-proxy starts nothing
  run_cmd '?' say "$OTHER_USER" 127.0.0.1 "$port"
  assert_output ""
  run_cmd '?' say root 127.0.0.1 "$port"
  assert_output ""
  run_cmd 0 unit_state "$p-activator.service"
  assert_output active
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  run_user_podman 0 ps -a -q --filter "name=^$p\$"
  assert_output ""
  retry 20 0.5 log_has "$p" "client refused: uid 65534 is not allowed by bro.allow=$CROSS_USER"
  run_cmd 0 allow_log "$p"
  assert_output --partial "uid=65534"
  assert_output --partial "rule=$CROSS_USER"
  assert_output --partial 'msg="client refused: uid 0 is not allowed by bro.allow='"$CROSS_USER"'"'

  # crossuser: let in, and the container starts for it
  run_cmd 0 say "$CROSS_USER" 127.0.0.1 "$port"
  assert_output hello
  run_cmd 0 unit_state "$p.service"
  assert_output active
  # the owner, who is not in the list
  run_cmd 0 say "$RIG_USER" 127.0.0.1 "$port"
  assert_output hello
  # still refused while the container runs
  run_cmd '?' say "$OTHER_USER" 127.0.0.1 "$port"
  assert_output ""
  retry 10 0.5 refused_is "$p" 3
}

@test "TCP: a rootless container of crossuser on the host network (a subordinate uid) counts as crossuser" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  activate "$p"
  wait_for_port "$port"
  # uid 1000 in crossuser's container is a uid of crossuser's /etc/subuid
  # range on the host, the owner of the client's socket
  run_cmd 0 as_user "$CROSS_USER" "$PODMAN" run --rm --name "$p-client" --network host --user 1000 "$BBOX_IMAGE" \
    sh -c "printf 'hello\\n' | timeout 30 nc 127.0.0.1 $port"
  assert_output hello
  # the same from a subordinate uid of nobody's: there is none, and nobody
  # itself is refused (the first test); the owner's own container gets in
  run_cmd 0 as_user "$RIG_USER" "$PODMAN" run --rm --name "$p-own" --network host --user 1000 "$BBOX_IMAGE" \
    sh -c "printf 'hello\\n' | timeout 30 nc 127.0.0.1 $port"
  assert_output hello
}

@test "TCP: a container of crossuser through slirp4netns carries crossuser's uid: in with crossuser listed, refused without" {
  local p=$BRO_TEST_PREFIX a b
  a=$(free_port); b=$(free_port)
  echo_quadlet "$p-a" "$a" "Annotation=bro.allow=$CROSS_USER"
  echo_quadlet "$p-b" "$b" "Annotation=bro.allow=root"
  activate "$p-a"
  activate "$p-b"
  wait_for_port "$a"
  wait_for_port "$b"
  # 10.0.2.2 is the host's loopback seen from slirp4netns; the host side of
  # the connection is crossuser's slirp4netns process
  run_cmd 0 as_user "$CROSS_USER" "$PODMAN" run --rm --name "$p-c1" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" \
    sh -c "printf 'hello\\n' | timeout 30 nc 10.0.2.2 $a"
  assert_output hello
  run_cmd '?' as_user "$CROSS_USER" "$PODMAN" run --rm --name "$p-c2" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" \
    sh -c "printf 'hello\\n' | timeout 10 nc 10.0.2.2 $b"
  assert_output ""
  run_cmd 0 unit_state "$p-b.service"
  assert_output inactive
  retry 20 0.5 log_has "$p-b" "client refused: uid $(id -u "$CROSS_USER") is not allowed by bro.allow=root"
}

@test "UDP: crossuser's queries are answered, another user's dropped before the container starts" {
  requires cmd:dig cmd:dnsmasq
  local i
  IMAGE=$DNS_IMAGE bash "$BRO_REPO/test/images/dnsmasq.sh" \
    runuser -u "$RIG_USER" -- env XDG_RUNTIME_DIR="/run/user/$(id -u "$RIG_USER")" "$PODMAN" >/dev/null
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  write_quadlet "$RIG_USER" "$p.container" <<EOF
[Container]
Image=$DNS_IMAGE
ContainerName=$p
Network=none
Annotation=bro.activate=127.0.0.1:$port:53/udp
Annotation=bro.allow=$CROSS_USER
Exec=--no-daemon --no-resolv --no-hosts --port=53 --listen-address=127.0.0.1 --bind-interfaces --user=root --address=/bro.test/127.0.0.7
EOF
  activate "$p"
  wait_for_port "$port" 10 udp
  run_cmd '!' as_user "$OTHER_USER" dig @127.0.0.1 -p "$port" +short +tries=1 +time=2 refused.bro.test
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  retry 20 0.5 log_has "$p" "client refused: uid 65534 is not allowed by bro.allow=$CROSS_USER"
  run_cmd 0 allow_log "$p"
  assert_output --partial "proto=udp"
  # a refused source is remembered: three datagrams from one port are one
  # lookup and one count (dig above was the first)
  local src; src=$(free_port)
  for i in 1 2 3; do
    as_user "$OTHER_USER" sh -c "printf x | nc -u -w 1 -p $src 127.0.0.1 $port" || true
  done
  retry 10 0.5 refused_is "$p" 2
  run_cmd 0 as_user "$CROSS_USER" dig @127.0.0.1 -p "$port" +short +tries=1 +time=30 allowed.bro.test
  assert_output 127.0.0.7
  run_cmd 0 unit_state "$p.service"
  assert_output active
  run_cmd 0 as_user "$RIG_USER" dig @127.0.0.1 -p "$port" +short +tries=1 +time=10 owner.bro.test
  assert_output 127.0.0.7
}

@test "unix listener: SO_PEERCRED lets crossuser in through a 0666 socket and refuses another user" {
  local p=$BRO_TEST_PREFIX port dir
  port=$(free_port)
  dir=$(user_tmpdir "$RIG_USER")/sock
  as_user "$RIG_USER" mkdir -p "$dir"
  chmod 0755 "$dir"
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  activate "$p" --listen-unix "$dir/echo.sock" --socket-mode 0666
  run_cmd 0 stat -c %a "$dir/echo.sock"
  assert_output 666
  # the file's mode lets everyone connect; the allow list does not
  run_cmd '?' say "$OTHER_USER" -U "$dir/echo.sock"
  assert_output ""
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  run_cmd 0 say "$CROSS_USER" -U "$dir/echo.sock"
  assert_output hello
  run_cmd 0 say "$RIG_USER" -U "$dir/echo.sock"
  assert_output hello
  run_cmd 0 allow_log "$p"
  assert_output --partial 'msg="client refused: uid 65534 is not allowed by bro.allow='"$CROSS_USER"'"'
}

@test "remote clients: an address in the list lets a client of another namespace in, another address of it is refused" {
  local p=$BRO_TEST_PREFIX port net host peer other
  port=$(free_port)
  make_netns
  # a /29 of its own on a veth pair: the host end listens, the namespace
  # end has two addresses, one of them in the list
  net=10.$(( 200 + RANDOM % 50 )).$(( RANDOM % 250 ))
  host=$net.1 peer=$net.2 other=$net.3
  ip link add "${p:0:11}h" type veth peer name "${p:0:11}n"
  ip link set "${p:0:11}n" netns "$NETNS"
  ip addr add "$host/29" dev "${p:0:11}h"
  ip link set "${p:0:11}h" up
  ip -n "$NETNS" addr add "$peer/29" dev "${p:0:11}n"
  ip -n "$NETNS" addr add "$other/29" dev "${p:0:11}n"
  ip -n "$NETNS" link set "${p:0:11}n" up
  # spaces, not a comma: Podman 4.3 cuts an annotation at its commas
  echo_quadlet "$p" "$port" "Annotation=\"bro.allow=$CROSS_USER $peer\""
  run_cmd 0 sed -i "s|^Annotation=bro.activate=.*|Annotation=bro.activate=$host:$port:7|" \
    "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/containers/systemd/$p.container"
  activate "$p"
  wait_for_port "$port"
  run_cmd '?' ip netns exec "$NETNS" sh -c "printf 'hello\\n' | nc -N -w 10 -s $other $host $port"
  assert_output ""
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  run_cmd 0 ip netns exec "$NETNS" sh -c "printf 'hello\\n' | nc -N -w 30 -s $peer $host $port"
  assert_output hello
  run_cmd 0 allow_log "$p"
  assert_output --partial "msg=\"client refused: address $other is not allowed by bro.allow=$CROSS_USER,$peer\""
  # a user of this host at the host's own veth address is judged by uid,
  # not by address (the address is the host's: its socket is found)
  run_cmd '?' say "$OTHER_USER" "$host" "$port"
  assert_output ""
  run_cmd 0 say "$CROSS_USER" "$host" "$port"
  assert_output hello
  ip link delete "${p:0:11}h" 2>/dev/null || true
}

@test "an address rule admits every local user from it: 127.0.0.0/8 lets nobody in, 10.0.0.0/8 does not" {
  local p=$BRO_TEST_PREFIX a b
  a=$(free_port); b=$(free_port)
  echo_quadlet "$p-a" "$a" "Annotation=bro.allow=127.0.0.0/8"
  echo_quadlet "$p-b" "$b" "Annotation=bro.allow=10.0.0.0/8"
  activate "$p-a"
  activate "$p-b"
  wait_for_port "$a"
  wait_for_port "$b"
  run_cmd 0 say "$OTHER_USER" 127.0.0.1 "$a"
  assert_output hello
  run_cmd '?' say "$OTHER_USER" 127.0.0.1 "$b"
  assert_output ""
  run_cmd 0 unit_state "$p-b.service"
  assert_output inactive
}

@test "clients that connect and close at once, and a flood of 200 refused clients, while crossuser is served" {
  local p=$BRO_TEST_PREFIX port i ok t0 quiet flood pid
  port=$(free_port)
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  activate "$p"
  wait_for_port "$port"
  # connect and close at once, refused and allowed users alike: nothing
  # starts, nothing breaks
  for i in 1 2 3 4 5; do
    as_user "$OTHER_USER" nc -z -w 5 127.0.0.1 "$port" || true
  done
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  as_user "$CROSS_USER" nc -z -w 5 127.0.0.1 "$port" || true
  run_cmd 0 say "$CROSS_USER" 127.0.0.1 "$port"
  assert_output hello

  # 20 requests of crossuser with nobody else, then 20 during the flood
  t0=$(date +%s%N)
  for i in $(seq 20); do [[ $(say "$CROSS_USER" 127.0.0.1 "$port") == hello ]] || fail "quiet request $i not served"; done
  quiet=$(( ($(date +%s%N) - t0) / 1000000 ))
  pid=$(run_bg as_user "$OTHER_USER" bash -c \
    "for i in \$(seq 200); do printf 'x\\n' | nc -N -w 5 127.0.0.1 $port; done; echo flood-done")
  ok=0
  t0=$(date +%s%N)
  for i in $(seq 20); do [[ $(say "$CROSS_USER" 127.0.0.1 "$port") == hello ]] && ok=$(( ok + 1 )); done
  flood=$(( ($(date +%s%N) - t0) / 1000000 ))
  retry 120 0.5 grep -q flood-done "$BATS_TEST_TMPDIR/bg.$pid.log"
  (( ok == 20 )) || fail "$ok of 20 requests of $CROSS_USER served during the flood; want 20"
  sleep 1.5 # STATUS= is updated once a second
  run_cmd 0 refused_count "$p"
  (( output >= 200 )) || fail "bro-proxy counted $output refused clients; want at least 200"
  # the refusals are logged a few per window, not one line each
  sleep 1
  output=$(allow_log "$p" | grep -c 'client refused') || true
  (( output <= 10 )) || fail "$output lines of refusals logged; want a few (rate-limited)"
  printf '# timing: 20 requests of %s: %d ms alone, %d ms during a flood of 200 refused clients\n' \
    "$CROSS_USER" "$quiet" "$flood" >&3
}

@test "Notify= and an allow list: nobody's psql starts nothing, crossuser's first one waits for PostgreSQL's READY=1" {
  pg_quadlet "Notify=true
Annotation=bro.allow=$CROSS_USER"
  pg_activate
  run_cmd 0 grep -x "ExecStart=.* --allow $CROSS_USER --wait-ready .*" "$UNIT_DIR/$PG_NAME-activator.service"
  run_cmd 1 grep -E "^(BindsTo|Wants|After)=$PG_NAME.service" "$UNIT_DIR/$PG_NAME-activator.service"
  run_cmd '!' as_user "$OTHER_USER" env PGCONNECT_TIMEOUT=10 "$PSQL" -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 'select 1'
  run_cmd 0 unit_state "$PG_NAME.service"
  assert_output inactive
  # cold: initdb, then the server; the client is held until the unit is
  # active, so it never sees "the database system is starting up"
  run_cmd 0 pg_sql -u "$CROSS_USER" "select current_user || ' ready'"
  assert_output "postgres ready"
  run_cmd 0 unit_state "$PG_NAME.service"
  assert_output active
  retry 20 0.5 log_has "$BRO_TEST_PREFIX-pg" "unit is active: clients may reach the server"
  run_cmd 0 pg_sql -u "$RIG_USER" "select 'owner'"
  assert_output owner
}

@test "idle stop with an allow list: the container stops with bro-proxy (BindsTo=), and only an allowed client starts it again" {
  local p=$BRO_TEST_PREFIX port
  port=$(free_port)
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  activate "$p" --idle-stop 3s
  run_cmd 0 grep -x "BindsTo=$p-activator.service" "$UNIT_DIR/$p.service.d/50-$p-activator-idle-stop.conf"
  run_cmd 1 grep -x "StopWhenUnneeded=yes" "$UNIT_DIR/$p.service.d/50-$p-activator-idle-stop.conf"
  wait_for_port "$port"
  run_cmd 0 say "$CROSS_USER" 127.0.0.1 "$port"
  assert_output hello
  run_cmd 0 unit_state "$p.service"
  assert_output active
  # 3 s without clients: bro-proxy exits, the container stops with it
  # (busybox nc, pid 1, ignores SIGTERM: podman kills it, and the unit may
  # end "failed")
  wait_unit_state "$p-activator.service" inactive 30
  wait_unit_down "$p.service" 30
  # a refused client activates bro-proxy again, but not the container
  run_cmd '?' say "$OTHER_USER" 127.0.0.1 "$port"
  assert_output ""
  run_cmd 0 unit_state "$p.service"
  refute_output active
  run_cmd 0 say "$CROSS_USER" 127.0.0.1 "$port"
  assert_output hello
  run_cmd 0 unit_state "$p.service"
  assert_output active
}

@test "generator route: Annotation=bro.allow alone, after daemon-reload, refuses nobody and serves crossuser" {
  local p=$BRO_TEST_PREFIX port gen
  port=$(free_port)
  gen=/run/user/$(id -u "$RIG_USER")/systemd/generator
  echo_quadlet "$p" "$port" "Annotation=bro.allow=$CROSS_USER"
  run_cmd 0 user_systemctl daemon-reload
  run_cmd 0 grep -x "ExecStart=.* --allow $CROSS_USER .*" "$gen/$p-activator.service"
  # only ours: starting sockets.target would start other suites' sockets
  run_cmd 0 user_systemctl start "$p-activator.socket"
  wait_for_port "$port"
  run_cmd '?' say "$OTHER_USER" 127.0.0.1 "$port"
  assert_output ""
  run_cmd 0 unit_state "$p.service"
  assert_output inactive
  run_cmd 0 say "$CROSS_USER" 127.0.0.1 "$port"
  assert_output hello
}

@test "bad allow lists: bro-activate writes nothing, the generator skips the quadlet; handoff is refused" {
  local p=$BRO_TEST_PREFIX port q
  port=$(free_port)
  echo_quadlet "$p" "$port"
  q=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/containers/systemd/$p.container
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --allow "$CROSS_USER,,uid:x" "$p"
  assert_output "bro-activate: --allow: invalid bro.allow=\"$CROSS_USER,,uid:x\": entry \"\": empty entry; want NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" --allow "nosuchuser-$p" "$p"
  assert_output "bro-activate: --allow: invalid bro.allow=\"nosuchuser-$p\": no user named \"nosuchuser-$p\"; want users and groups of this host (NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces)"
  [[ ! -e $UNIT_DIR/$p-activator.socket && ! -e $UNIT_DIR/$p-activator.service && ! -e $UNIT_DIR/$p.service.d ]]
  # the generator: the same value in the quadlet is logged and skipped
  run_cmd 0 sed -i '$a Annotation=bro.allow=@' "$q"
  local out; out=$(user_tmpdir "$RIG_USER")/gen
  as_user "$RIG_USER" mkdir -p "$out"
  run_cmd 0 as_user "$RIG_USER" "$BRO_USER_GENERATOR" "$out"
  assert_output --partial "bro-generator: skipping $q: invalid bro.allow=\"@\": \"\" is not a group name; want NAME, uid:N, @GROUP, an IP address or IP/PREFIX, separated by commas or spaces"
  [[ ! -e $out/$p-activator.service ]]
  # with the handoff mode there is no proxy to check
  run_cmd 0 sed -i -e 's/^Annotation=bro.allow=@$/Annotation=bro.allow=crossuser/' -e '$a Annotation=bro.mode=handoff' "$q"
  run_cmd 1 as_user "$RIG_USER" "$BRO_ACTIVATE" "$p"
  assert_output "bro-activate: $q: bro.allow cannot be used with bro.mode=handoff: handoff passes the socket into the container and no proxy checks who connects; remove one of them"
  [[ ! -e $UNIT_DIR/$p-activator.service ]]
}
