#!/usr/bin/env bats
# 530-load: as many connections through one bro-proxy as its descriptor
# limit holds at two per connection (issue 12), all open at once, each
# echo-verified twice; bro-proxy's descriptors at peak at most 2 per
# connection plus a fixed overhead, and back to baseline afterwards.
#
# N is (hard NOFILE - 100) / 2, rounded down to hundreds: 9,900 on the rig,
# whose hard limit of 20,000 cannot be raised (no CAP_SYS_RESOURCE). An idle
# connection may hold its two sockets and nothing else: a proxy that keeps a
# splice pipe pair per direction for a connection's whole life (6
# descriptors each) runs out at about a third of N and fails here.
# Each of the three processes needs N descriptors or more: broload hold (the
# client) and broload serve raise their soft limits to the hard one (hold
# refuses an N that does not fit), bro-proxy raises its own.
# BRO_LOAD_N and BRO_LOAD_FD_OVERHEAD (default 64) override. About 30 s on
# the 2-core rig.

load helpers

BRO_LOAD_N=${BRO_LOAD_N:-$(( ($(ulimit -Hn) - 100) / 2 / 100 * 100 ))}
BRO_LOAD_FD_OVERHEAD=${BRO_LOAD_FD_OVERHEAD:-64}

setup() {
  bro_setup
  requires root
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
  make_netns
}

fds_of() { ls "/proc/$1/fd" | wc -l; }
rss_of() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

@test "$BRO_LOAD_N connections held at once through one bro-proxy: each echoed twice, 2 descriptors each, back to baseline" {
  local n=$BRO_LOAD_N front; front=$(free_port)
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --listen 127.0.0.1:8080 >/dev/null
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" \
    "$BRO_PROXY" --netns "/run/netns/$NETNS" --connections-max $((n + 100)) 127.0.0.1:8080 >/dev/null
  local proxy; proxy=$(tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids")
  wait_for_port "$front"
  # The first connection makes systemd-socket-activate exec bro-proxy (same
  # pid). 100 at once, as many as hold opens at a time and more: whatever a
  # proxy keeps for busy connections (a pipe pool) is in the baseline.
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 100 --timeout 20s
  assert_output "100/100 clients served, 0 failed"
  [[ $(readlink "/proc/$proxy/exe") == "$(readlink -f "$BRO_PROXY")" ]] ||
    fail "pid $proxy is $(readlink "/proc/$proxy/exe"), not $BRO_PROXY"
  sleep 1.5 # past bro-proxy's settle time (1 s without churn)
  local base rss0; base=$(fds_of "$proxy"); rss0=$(rss_of "$proxy")

  local ready=$BATS_TEST_TMPDIR/held
  run_bg "$BROLOAD" hold "127.0.0.1:$front" -n "$n" --timeout 5s --hold 5m --ready-file "$ready" >/dev/null
  local load; load=$(tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids")
  # the peak: sampled while the connections open, and once all are held
  local peak=0 f deadline=$(( SECONDS + 180 ))
  while [[ ! -e $ready ]]; do
    f=$(fds_of "$proxy"); (( f > peak )) && peak=$f
    kill -0 "$load" 2>/dev/null || break
    (( SECONDS < deadline )) || fail "broload hold did not open $n connections in 180 s"
    sleep 0.2
  done
  [[ -e $ready ]] || { cat "$BATS_TEST_TMPDIR/bg.$load.log"; fail "broload hold exited before it held anything"; }
  sleep 1.5 # all held and idle
  f=$(fds_of "$proxy"); (( f > peak )) && peak=$f
  local rss held; rss=$(rss_of "$proxy")
  held=$(sed -n 's|^held \([0-9]*\)/.*|\1|p' "$ready")
  echo "# $held of $n held: bro-proxy descriptors $base -> $f (peak $peak; $(( (f - base) * 100 / (held > 0 ? held : 1) )) per 100 held), RSS $rss0 -> $rss KiB" >&3
  run_cmd 0 cat "$ready"
  assert_output "held $n/$n connections, each echoed twice"
  (( peak <= 2 * n + BRO_LOAD_FD_OVERHEAD )) ||
    fail "bro-proxy had $peak descriptors at peak for $n connections; want at most 2 per connection + $BRO_LOAD_FD_OVERHEAD = $(( 2 * n + BRO_LOAD_FD_OVERHEAD ))"

  kill -TERM "$load"
  wait "$load" || fail "broload hold exited with status $?: $(cat "$BATS_TEST_TMPDIR/bg.$load.log")"
  retry 100 0.1 bash -c "(( \$(ls /proc/$proxy/fd | wc -l) <= $base ))"
  echo "# after: $(fds_of "$proxy") descriptors, RSS $(rss_of "$proxy") KiB" >&3
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 20 --timeout 20s
  assert_output "20/20 clients served, 0 failed"
}
