#!/usr/bin/env bats
# 490-refusals: bad input through the user's own route: a bad annotation in
# a quadlet, a missing quadlet, a unit that already exists. (bro-proxy aimed
# at another user's container: 200-proxy.bats.)

load helpers
load pg

setup() {
  bro_setup
  requires root user_manager bro
}

@test "a bad annotation: bro-activate refuses it, naming the value and the rule" {
  pg_quadlet
  sed -i "s/^Annotation=bro.activate=.*/Annotation=bro.activate=127.0.0.1:0:5432/" \
    "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/containers/systemd/$PG_NAME.container"
  run_cmd '!' as_user "$RIG_USER" "$BRO_ACTIVATE" "$PG_NAME"
  assert_output --partial 'invalid bro.activate="127.0.0.1:0:5432": host port 0 is out of range 1-65535; want [[ip:]hostPort:]containerPort[/tcp|/udp]'
  run_cmd 0 ls "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user"
  refute_output --partial "$PG_NAME-activator"
}

@test "a bad annotation: the container does not start and the hook's message is in the unit's journal" {
  write_quadlet "$RIG_USER" "$BRO_TEST_PREFIX.container" <<EOF
[Container]
Image=$BBOX_IMAGE
ContainerName=$BRO_TEST_PREFIX-ctr
Network=none
Annotation=bro.activate=8080/sctp
Exec=sleep 300
EOF
  run_cmd 0 user_systemctl daemon-reload
  run_cmd '!' user_systemctl start "$BRO_TEST_PREFIX.service"
  run_user_podman 0 ps -a --filter "name=^$BRO_TEST_PREFIX-ctr\$" --filter status=running -q
  assert_output ""
  run_cmd 0 user_journalctl -o cat -u "$BRO_TEST_PREFIX.service"
  assert_output --partial 'bro-hook: invalid bro.activate=\"8080/sctp\": protocol \"sctp\" is not tcp or udp'
}

@test "a missing quadlet: one clear error, nothing written" {
  run_cmd '!' as_user "$RIG_USER" "$BRO_ACTIVATE" "$BRO_TEST_PREFIX-nothere"
  assert_output --partial "$BRO_TEST_PREFIX-nothere.container"
  run_cmd 0 ls "$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user"
  refute_output --partial "$BRO_TEST_PREFIX-nothere"
}

@test "a unit that already exists: refused without --force, replaced with it" {
  pg_quadlet
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" "$PG_NAME"
  local unitdir; unitdir=$(getent passwd "$RIG_USER" | cut -d: -f6)/.config/systemd/user
  local before; before=$(sha256sum "$unitdir/$PG_NAME-activator.service")
  run_cmd '!' as_user "$RIG_USER" "$BRO_ACTIVATE" "$PG_NAME"
  assert_output --partial "$PG_NAME-activator"
  assert_output --partial "exists"
  [[ $(sha256sum "$unitdir/$PG_NAME-activator.service") == "$before" ]] || fail "the unit was changed"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" --force "$PG_NAME"
  run_cmd 0 as_user "$RIG_USER" "$BRO_ACTIVATE" --remove "$PG_NAME"
  [[ ! -e $unitdir/$PG_NAME-activator.service && ! -e $unitdir/$PG_NAME-activator.socket ]] ||
    fail "--remove left units behind"
}
