#!/usr/bin/env bash
# soak.sh [SECONDS] - steady connection churn through one bro-proxy for
# SECONDS (default 300), sampling its RSS and open descriptors every 15 s:
# both must stay flat. A benchmark, not a test (make soak); as root, on
# loopback and in a network namespace it creates and removes.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-300}
GO=${GO:-go}
(( EUID == 0 )) || { echo "soak.sh: run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/brosoak.XXXXXX)
netns=brosoak-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$GO" build -trimpath -o "$work/broload" ./test/broload
"$GO" build -trimpath -o "$work/bro-proxy" ./cmd/bro-proxy
ip netns add "$netns"
ip -n "$netns" link set lo up
ip netns exec "$netns" "$work/broload" serve --raw --listen 127.0.0.1:7000 >/dev/null 2>&1 &
pids+=($!)
port=$(( 20000 + RANDOM % 10000 ))
systemd-socket-activate -l "127.0.0.1:$port" "$work/bro-proxy" --log-level warning --netns "/run/netns/$netns" 127.0.0.1:7000 >/dev/null 2>&1 &
pids+=($!)
sp=${pids[-1]}
sleep 0.5
# the first connection makes systemd-socket-activate exec bro-proxy (same pid)
"$work/broload" conn "127.0.0.1:$port" --workers 1 --duration 1s >/dev/null
"$work/broload" conn "127.0.0.1:$port" --workers 16 --duration "${DUR}s" >"$work/load.json" &
load=$!
pids+=("$load")
sample() { awk '/^VmRSS/{r=$2} END{printf "%s", r}' "/proc/$sp/status"; printf ' %s\n' "$(ls "/proc/$sp/fd" | wc -l)"; }
echo "| t (s) | bro-proxy RSS (KiB) | open fds |"
echo "|--:|--:|--:|"
t0=$SECONDS
while kill -0 "$load" 2>/dev/null; do
  read -r rss fds < <(sample)
  echo "| $(( SECONDS - t0 )) | $rss | $fds |"
  sleep 15
done
wait "$load"
sleep 2
read -r rss fds < <(sample)
echo "| $(( SECONDS - t0 )) (after) | $rss | $fds |"
echo
echo "load: $(cat "$work/load.json")"
echo "machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')"
