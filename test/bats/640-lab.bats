#!/usr/bin/env bats
# 640-lab: the networking lab's section-4 example ("When to use cross-over
# dependencies vs. network quadlets", its concrete example), for real.
#
#   thirduser ──> 127.0.0.1:8443  crossuser's activator socket
#                   └─ bro-proxy ─> nginx (Debian's), Network=slirp4netns:allow_host_loopback=true
#                        └─ proxy_pass http://10.0.2.2:8080 = the host's 127.0.0.1:8080
#                             (crossuser's slirp4netns process connects: uid crossuser)
#   127.0.0.1:8080  lingeruser's activator socket, bro.allow=crossuser
#     └─ bro-proxy ─> web (bro-labapp) ── a private .network quadlet ──> PostgreSQL, Redis
#                      Requires=/After= db and cache: they start with it
#
# The dependency graph (web, database, cache) lives in one account on a
# private network; only the web app is exposed, on the host's loopback, and
# only to the reverse proxy's account (and its owner). thirduser is served
# through nginx and refused at 8080, from a shell and from a container of its
# own. The first request to 8443 with everything stopped starts the whole
# chain; the units' states before and after are printed (# lines), as the
# lab shows them. Timing is make bench-lab's (test/bench/lab.sh), never
# asserted here.

load helpers
load lab

setup() {
  bro_setup
  requires root user_manager bro cmd:curl
  user_manager_ok "$CROSS_USER" ||
    fail "test requires the systemd --user manager of $CROSS_USER (run make check as root: it builds the rig)"
  getent passwd "$THIRD_USER" >/dev/null || fail "test requires the rig's $THIRD_USER (test/rig/rig-up.sh)"
}

@test "the lab's section-4 example: thirduser through nginx (crossuser) to the web app, its database and cache (lingeruser); the first request starts the chain" {
  local p=$BRO_TEST_PREFIX web proxy
  web=$(lab_port 8080)
  proxy=$(lab_port 8443)
  printf '# web app on 127.0.0.1:%s, nginx on 127.0.0.1:%s\n' "$web" "$proxy" >&3
  lab_quadlets "$web" "$proxy"

  # everything stopped: only the two sockets listen
  show_states "before the first request"
  run_cmd 0 states "$RIG_USER" "${LAB_UNITS[@]}"
  assert_output "$p-net-network.service=inactive $p-db.service=inactive $p-cache.service=inactive $p-web.service=inactive $p-web-activator.service=inactive $p-web-activator.socket=active"
  run_cmd 0 states "$CROSS_USER" "${PROXY_UNITS[@]}"
  assert_output "$p-proxy.service=inactive $p-proxy-activator.service=inactive $p-proxy-activator.socket=active"

  # thirduser's first request to nginx starts it all: nginx, the web app's
  # activator, the web app, and through its Requires= the database and cache
  run_cmd 0 get "$THIRD_USER" "$proxy"
  assert_output --regexp "^lab: postgres 15\.[0-9]+ at [0-9T:-]+Z, redis hits 1, web [0-9a-f]+$"
  show_states "after thirduser's first request to 127.0.0.1:$proxy"
  run_cmd 0 states "$RIG_USER" "${LAB_UNITS[@]}"
  assert_output "$p-net-network.service=active $p-db.service=active $p-cache.service=active $p-web.service=active $p-web-activator.service=active $p-web-activator.socket=active"
  run_cmd 0 states "$CROSS_USER" "${PROXY_UNITS[@]}"
  assert_output "$p-proxy.service=active $p-proxy-activator.service=active $p-proxy-activator.socket=active"
  # each answer asked the cache again
  run_cmd 0 get "$THIRD_USER" "$proxy"
  assert_output --regexp ", redis hits 2, "

  # who reaches the web app itself: its owner and the proxy's account
  run_cmd 0 get "$RIG_USER" "$web"
  assert_output --regexp ", redis hits 3, "
  run_cmd 0 get "$CROSS_USER" "$web"
  assert_output --regexp ", redis hits 4, "
  # thirduser does not: reset before a byte reaches the web app
  run_cmd '!' get "$THIRD_USER" "$web"
  refute_output --partial "lab:"
  # nor a container of thirduser through its own slirp4netns (its uid)
  run_cmd '!' as_user "$THIRD_USER" timeout 60 "$PODMAN" run --rm --name "$p-third" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" wget -qO- "http://10.0.2.2:$web/"
  refute_output --partial "lab:"
  # which nginx serves
  run_cmd 0 as_user "$THIRD_USER" timeout 60 "$PODMAN" run --rm --name "$p-third" \
    --network slirp4netns:allow_host_loopback=true "$BBOX_IMAGE" wget -qO- "http://10.0.2.2:$proxy/"
  assert_output --regexp "^lab: postgres 15\.[0-9]+ at .*, redis hits 5, "
  run_cmd 0 user_journalctl -o cat -u "$p-web-activator.service"
  assert_output --partial "client refused: uid $(id -u "$THIRD_USER") is not allowed by bro.allow=$CROSS_USER"

  # the database and the cache are on the private network only: no port of
  # theirs is published on the host
  run_user_podman 0 port "$p-db"
  assert_output ""
  run_user_podman 0 port "$p-cache"
  assert_output ""

  # everything stopped again, and the first request starts it all once more
  lab_stop
  show_states "everything stopped again"
  run_cmd 0 states "$RIG_USER" "${LAB_UNITS[@]}"
  assert_output "$p-net-network.service=inactive $p-db.service=inactive $p-cache.service=inactive $p-web.service=inactive $p-web-activator.service=inactive $p-web-activator.socket=active"
  run_cmd 0 get "$THIRD_USER" "$proxy"
  # a new Redis (no persistence): the count starts again; PostgreSQL keeps its data directory
  assert_output --regexp "^lab: postgres 15\.[0-9]+ at .*, redis hits 1, "
  show_states "after the next first request"
  run_cmd 0 states "$RIG_USER" "${LAB_UNITS[@]}"
  assert_output "$p-net-network.service=active $p-db.service=active $p-cache.service=active $p-web.service=active $p-web-activator.service=active $p-web-activator.socket=active"
}
