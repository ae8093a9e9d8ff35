#!/usr/bin/env bash
# test/bench/run.sh bench|coldstart [brobench flags...]
#
# Builds brobench, bro-proxy and broload (static: it also runs inside the
# busybox container) from this tree into a temporary directory and runs one
# benchmark, bounded in time, as root:
#   bench      issue 12's comparison (docs/bench.md): bro-proxy vs
#              systemd-socket-proxyd vs pasta vs direct, in a netns it creates
#              and behind a rootless Network=none container of the rig user;
#              20 minutes at most (a full run takes about 15)
#   coldstart  the PostgreSQL quadlet cold start on the rig (user lingeruser);
#              10 minutes at most
# BRO_PROXY=PATH measures that bro-proxy instead of building one;
# BENCH_LIMIT=SECONDS changes the bound.
# Everything brobench starts it kills by pid; the trap removes the netns and
# the build directory even if brobench itself is killed (brobench removes
# its bench-* containers; a SIGKILLed one leaves them to `podman rm`).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: test/bench/run.sh bench|coldstart [flags]}
shift
GO=${GO:-go}

if (( EUID != 0 )); then
  echo "run.sh: run as root (ip netns, nsenter, the rig user's processes)" >&2
  exit 1
fi
# world-readable: the rig user runs bro-proxy and broload from here
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
CGO_ENABLED=0 "$GO" build -trimpath -o "$work/broload" ./test/broload
note="tree $(git describe --always --dirty 2>/dev/null || echo '?'), bro-proxy built from it"
if [[ -n ${BRO_PROXY:-} ]]; then
  install -m 0755 "$BRO_PROXY" "$work/bro-proxy"
  note="tree $(git describe --always --dirty 2>/dev/null || echo '?'), bro-proxy $BRO_PROXY"
else
  "$GO" build -trimpath -ldflags "-X github.com/brothaman/brothaman-go/internal/version.Version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
    -o "$work/bro-proxy" ./cmd/bro-proxy
fi
chmod 0755 "$work/brobench" "$work/bro-proxy" "$work/broload"

case $mode in
bench)
  timeout --kill-after=20 "${BENCH_LIMIT:-1200}" "$work/brobench" run --netns "$netns" \
    --proxy "$work/bro-proxy" --broload "$work/broload" --note "$note" "$@"
  ;;
coldstart)
  timeout --kill-after=20 "${BENCH_LIMIT:-600}" "$work/brobench" coldstart --proxy "$work/bro-proxy" "$@"
  ;;
*)
  echo "run.sh: unknown mode $mode: want bench or coldstart" >&2
  exit 2
  ;;
esac
