#!/usr/bin/env bash
# test/bench/run.sh bench|coldstart [brobench flags...]
#
# Builds brobench and bro-proxy from this tree into a temporary directory and
# runs one benchmark, bounded in time (10 minutes), as root:
#   bench      bro-proxy vs systemd-socket-proxyd vs direct, in a netns it creates
#   coldstart  the PostgreSQL quadlet cold start on the rig (user lingeruser)
# Everything brobench starts it kills by pid; the trap removes the netns
# and the build directory even if brobench itself is killed.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: test/bench/run.sh bench|coldstart [flags]}
shift
GO=${GO:-go}
LIMIT=${BENCH_LIMIT:-600}

if (( EUID != 0 )); then
  echo "run.sh: run as root (ip netns, runuser)" >&2
  exit 1
fi
# world-readable: the user manager runs bro-proxy from here in coldstart
work=$(mktemp -d /tmp/brobench.XXXXXX)
chmod 0755 "$work"
netns=brobench-$$
cleanup() {
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

"$GO" build -trimpath -o "$work/brobench" ./test/bench
"$GO" build -trimpath -o "$work/bro-proxy" ./cmd/bro-proxy
chmod 0755 "$work/brobench" "$work/bro-proxy"

case $mode in
bench)
  timeout --kill-after=20 "$LIMIT" "$work/brobench" run --netns "$netns" --proxy "$work/bro-proxy" "$@"
  ;;
coldstart)
  timeout --kill-after=20 "$LIMIT" "$work/brobench" coldstart --proxy "$work/bro-proxy" "$@"
  ;;
*)
  echo "run.sh: unknown mode $mode: want bench or coldstart" >&2
  exit 2
  ;;
esac
