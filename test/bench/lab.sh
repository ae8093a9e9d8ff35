#!/usr/bin/env bash
# test/bench/lab.sh [COLD=5] - make bench-lab: the cold start of the
# networking lab's section-4 example (docs/bench.md, "Blast radius"), the
# quadlets of test/bats/640-lab.bats. Runs test/bench/lab.bats with the
# installed bro-* and prints the machine's load before and after. As root,
# on the rig (test/rig/rig-up.sh); removes what it made.
set -euo pipefail
cd "$(dirname "$0")/../.."
(( EUID == 0 )) || { echo "lab.sh: run as root" >&2; exit 1; }
export COLD=${1:-${COLD:-5}}
echo "# $(date -u +%FT%TZ), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
bats --tap test/bench/lab.bats
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
