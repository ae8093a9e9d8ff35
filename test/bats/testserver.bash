# shellcheck shell=bash
# testserver.bash - bro-testserver (test/testserver) in an image of its own,
# for the suites that need a container whose reply can only come from inside
# it (load helpers first, then testserver).

TESTSERVER_IMAGE=${TESTSERVER_IMAGE:-localhost/bro-testserver:bats}
BRO_TESTSERVER=${BRO_TESTSERVER:-$BATS_TEST_DIRNAME/../../bin/bro-testserver}

# build_testserver_image: the static test server in an image FROM scratch,
# built offline by the rig user from test/testserver/Containerfile.
build_testserver_image() {
  local ctx
  [[ -x $BRO_TESTSERVER ]] || fail "no $BRO_TESTSERVER (make build)"
  ctx=$(user_tmpdir "$RIG_USER")/image
  install -d -o "$RIG_USER" "$ctx"
  install -o "$RIG_USER" -m 0755 "$BRO_TESTSERVER" "$ctx/bro-testserver"
  install -o "$RIG_USER" -m 0644 "$BATS_TEST_DIRNAME/../testserver/Containerfile" "$ctx/Containerfile"
  run_user_podman 0 build -q -t "$TESTSERVER_IMAGE" -f "$ctx/Containerfile" "$ctx"
}

# ask PORT LINE [TIMEOUT=30]: send LINE to 127.0.0.1:PORT, print the first
# line of the reply. Fails if the connection is refused, closed or reset
# before a reply; exits 124 if nothing comes within TIMEOUT seconds.
ask() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout "${3:-30}" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%s\n" "$2" >&3 && IFS= read -r l <&3 && printf "%s\n" "$l"' bash "$1" "$2"
}
