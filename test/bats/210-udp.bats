#!/usr/bin/env bats
# 210-udp: bro-proxy relays UDP per client flow, with a real DNS server
# (dnsmasq, Debian's package) and dig: in a namespace of the test, and in a
# Network=none container found through the hook's record, started cold.

load helpers

DNS_IMAGE=localhost/bro-dnsmasq:latest
# dnsmasq answers bro.test itself: no upstream, no traffic leaves loopback
DNSMASQ_ARGS=(--no-daemon --no-resolv --no-hosts --port=53 --listen-address=127.0.0.1
              --bind-interfaces --user=root --address=/bro.test/127.0.0.7)

setup_file() {
  IMAGE=$DNS_IMAGE bash "$BRO_REPO/test/images/dnsmasq.sh" >/dev/null
}

setup() {
  bro_setup
  requires root bro cmd:dig cmd:dnsmasq
}


proxy_log() { cat "$BATS_TEST_TMPDIR"/bg.*.log; }

@test "UDP in a namespace: dig through bro-proxy --netns reaches dnsmasq" {
  make_netns
  run_bg ip netns exec "$NETNS" dnsmasq "${DNSMASQ_ARGS[@]}" >/dev/null
  local port; port=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -d -l "127.0.0.1:$port" "$BRO_PROXY" --netns "/run/netns/$NETNS" 127.0.0.1:53 >/dev/null
  wait_for_port "$port" 10 udp
  local i
  for i in 1 2 3; do
    run_cmd 0 dig @127.0.0.1 -p "$port" +short +tries=1 +time=10 "host$i.bro.test"
    assert_output 127.0.0.7
  done
  # TCP is not served on that port: the socket is UDP only
  run_cmd '!' dig @127.0.0.1 -p "$port" +short +tcp +tries=1 +time=2 bro.test
}

@test "UDP cold start: the first query starts nothing but waits, and is answered when the container's dnsmasq binds" {
  local port; port=$(free_port)
  run_bg "$SOCKET_ACTIVATE" -d -l "127.0.0.1:$port" "$BRO_PROXY" --container "$BRO_TEST_PREFIX" 127.0.0.1:53 >/dev/null
  wait_for_port "$port" 10 udp
  # the query goes first; the container starts a second later
  run_bg dig @127.0.0.1 -p "$port" +short +tries=1 +time=20 first.bro.test >/dev/null
  sleep 1
  run_podman 0 run -d --name "$BRO_TEST_PREFIX" --network none --annotation bro.activate=53/udp \
    "$DNS_IMAGE" "${DNSMASQ_ARGS[@]}"
  retry 40 0.5 grep -q 127.0.0.7 "$BATS_TEST_TMPDIR"/bg.*.log
  # and warm
  run_cmd 0 dig @127.0.0.1 -p "$port" +short +tries=1 +time=5 second.bro.test
  assert_output 127.0.0.7
  run_cmd 0 proxy_log
  assert_output --partial "container found; entered its network namespace"
}
