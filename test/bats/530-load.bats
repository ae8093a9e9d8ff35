#!/usr/bin/env bats
# 530-load: as many concurrent connections through one bro-proxy as its
# descriptor limit fits, all open at once, all served; bro-proxy's sockets
# back to baseline afterwards.
#
# Each proxied connection holds 2 sockets and, for its whole life, a splice
# pipe per direction (2 fds each): 6 descriptors. 10,000 connections need
# ~60,000; the rig's hard NOFILE limit is 20,000 and cannot be raised here
# (no CAP_SYS_RESOURCE), so the default is what fits: (hard - 200) / 6,
# rounded down to hundreds (3,300 on the rig). bro-proxy raises its soft
# limit to the hard one itself. BRO_LOAD_N overrides (10000 where the hard
# limit is >= 61,000, e.g. LimitNOFILE=65536). About 30 s on the 2-core rig.

load helpers

BRO_LOAD_N=${BRO_LOAD_N:-$(( ($(ulimit -Hn) - 200) / 6 / 100 * 100 ))}

setup() {
  bro_setup
  requires root
  [[ -x $BROLOAD ]] || fail "$BROLOAD missing: run make build"
  make_netns
}


sockets_of() { find "/proc/$1/fd" -lname 'socket:*' | wc -l; }

@test "$BRO_LOAD_N concurrent connections through one bro-proxy: all served, descriptors back to baseline" {
  local n=$BRO_LOAD_N front; front=$(free_port)
  run_bg ip netns exec "$NETNS" "$BROLOAD" serve --listen 127.0.0.1:8080 >/dev/null
  run_bg "$SOCKET_ACTIVATE" -l "127.0.0.1:$front" \
    "$BRO_PROXY" --netns "/run/netns/$NETNS" --connections-max $((n + 100)) 127.0.0.1:8080 >/dev/null
  local proxy; proxy=$(tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids")
  wait_for_port "$front"
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 20 --timeout 20s
  local base; base=$(sockets_of "$proxy")
  local rss0; rss0=$(awk '/^VmRSS/{print $2}' "/proc/$proxy/status")
  # every client holds its connection 10 s after its echo: all n are open at once
  run_bg "$BROLOAD" clients "127.0.0.1:$front" -n "$n" --hold 10s --timeout 90s >/dev/null
  local load; load=$(tail -n 1 "$BATS_TEST_TMPDIR/.bro-pids")
  # peak: sample the proxy's sockets while the clients hold
  local peak=0 s rss=0 r i
  for ((i = 0; i < 100; i++)); do
    s=$(sockets_of "$proxy"); (( s > peak )) && peak=$s
    r=$(awk '/^VmRSS/{print $2}' "/proc/$proxy/status"); (( r > rss )) && rss=$r
    (( peak >= 2 * n )) && break
    kill -0 "$load" 2>/dev/null || break
    sleep 0.2
  done
  local fds; fds=$(ls "/proc/$proxy/fd" | wc -l)
  echo "# peak: $peak sockets ($fds fds) in bro-proxy for $n clients; RSS ${rss0} -> ${rss} KiB ($(( (rss - rss0) * 1024 / n )) B per connection)" >&3
  (( peak >= 2 * n )) || fail "peak $peak sockets in bro-proxy; want $((2 * n)) (all $n connections open at once)"
  wait "$load"
  run_cmd 0 cat "$BATS_TEST_TMPDIR/bg.$load.log"
  assert_output "$n/$n clients served, 0 failed"
  retry 100 0.1 bash -c "(( \$(find /proc/$proxy/fd -lname 'socket:*' | wc -l) <= $base ))"
  run_cmd 0 "$BROLOAD" clients "127.0.0.1:$front" -n 20 --timeout 20s
  assert_output "20/20 clients served, 0 failed"
}
