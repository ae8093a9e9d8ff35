#!/usr/bin/env bash
# test/bench/handoff.sh [ROUNDS=3] - issue 13's comparison (docs/bench.md,
# "Handoff"): pgbench against the rig's PostgreSQL image in a rootless
# Network=none quadlet of the rig user, three ways in one run:
#   handoff   the host socket in the postmaster's own bind() (bro.mode=handoff)
#   proxy     a second, identical quadlet behind bro-proxy (proxy mode)
#   in-netns  pgbench inside the handoff container's network namespace
#             (podman unshare nsenter -n), to the postmaster's second socket
#             (listen_addresses='*': [::1]) - no socket of ours on the way
# Each round runs every way with `pgbench -n -S -c 8 -j 2` (persistent
# connections) and `-n -S -C -c 4 -j 2` (a new connection per transaction),
# 5 s each, in turn; the table gives the median tps and the ratio to in-netns.
# Uses the installed bro-* (make install or the package) and the generator
# route (daemon-reload). As root. Removes its quadlets and data at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
T=${PGBENCH_TIME:-5}
USER_=${RIG_USER:-lingeruser}
PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
PSQL=${PSQL:-/usr/lib/postgresql/15/bin/psql}
(( EUID == 0 )) || { echo "handoff.sh: run as root" >&2; exit 1; }
# shellcheck source=../rig/as-user.sh
source test/rig/as-user.sh
# the generator route needs the installed programs, not this tree's bin/
gen=
for g in /usr/lib/systemd/user-generators/bro-generator /usr/local/lib/systemd/user-generators/bro-generator; do
  [[ -x $g ]] && gen=$g && break
done
[[ -n $gen ]] || { echo "handoff.sh: no bro-generator in /usr/lib or /usr/local/lib/systemd/user-generators: install first (make deb-install, or make install)" >&2; exit 1; }
uid=$(id -u "$USER_")
home=$(getent passwd "$USER_" | cut -d: -f6)
qdir=$home/.config/containers/systemd
p=bench-ho-$$
HO_PORT=$(( 30000 + RANDOM % 10000 ))
PX_PORT=$(( HO_PORT + 1 ))
data=$(as_user "$USER_" mktemp -d "/tmp/$p.XXXXXX")

cleanup() {
  as_user "$USER_" systemctl --user stop "$p-ho-activator.socket" "$p-ho-activator-seccomp.socket" "$p-ho-activator.service" \
    "$p-ho.service" "$p-px-activator.socket" "$p-px-activator.service" "$p-px.service" 2>/dev/null || true
  rm -f "$qdir/$p-ho.container" "$qdir/$p-px.container"
  as_user "$USER_" systemctl --user daemon-reload || true
  as_user "$USER_" podman unshare rm -rf "$data" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

quadlet() { # NAME PORT MODE-LINE
  as_user "$USER_" mkdir -p "$qdir" "$data/$1"
  as_user "$USER_" tee "$qdir/$p-$1.container" >/dev/null <<EOF
[Container]
Image=localhost/postgres:15
ContainerName=$p-$1
Environment=POSTGRES_PASSWORD=password POSTGRES_LISTEN_ADDRESSES=*
Volume=$data/$1:/var/lib/postgresql/data
Network=none
Notify=true
Annotation=bro.activate=$2
$3
Exec=-p $2 -c max_connections=50
EOF
}
quadlet ho "$HO_PORT" "Annotation=bro.mode=handoff"
quadlet px "$PX_PORT" ""
as_user "$USER_" systemctl --user daemon-reload
as_user "$USER_" systemctl --user start "$p-ho-activator.socket" "$p-px-activator.socket"
export PGPASSWORD=password PGCONNECT_TIMEOUT=60
for port in "$HO_PORT" "$PX_PORT"; do
  "$PSQL" -X -q -h 127.0.0.1 -p "$port" -U postgres -c 'select 1' >/dev/null
  "$PGBENCH" -i -q -s 1 -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1
done
pid=$(as_user "$USER_" podman inspect -f '{{.State.Pid}}' "$p-ho")

# run WAY ARGS...: pgbench's tps (excluding connection time is not what a
# client sees with -C: take "tps = N (without initial connection time)" for
# -S and the including figure for -C, as pgbench prints one of them)
run() {
  local way=$1; shift
  local out
  case $way in
    handoff) out=$("$PGBENCH" "$@" -T "$T" -h 127.0.0.1 -p "$HO_PORT" -U postgres postgres 2>&1) ;;
    proxy) out=$("$PGBENCH" "$@" -T "$T" -h 127.0.0.1 -p "$PX_PORT" -U postgres postgres 2>&1) ;;
    in-netns) out=$(as_user "$USER_" env PGPASSWORD=password podman unshare nsenter -t "$pid" -n \
                    "$PGBENCH" "$@" -T "$T" -h ::1 -p "$HO_PORT" -U postgres postgres 2>&1) ;;
  esac
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1
}

declare -A tps
ways=(handoff proxy in-netns)
scens=("-S -c 8" "-S -C -c 4")
for r in $(seq "$ROUNDS"); do
  for s in "${scens[@]}"; do
    for w in "${ways[@]}"; do
      # shellcheck disable=SC2086
      v=$(run "$w" -n $s -j 2)
      tps[$w,$s]+="$v "
      echo "round $r: pgbench -n $s -j 2 via $w: $v tps" >&2
    done
  done
done

# cold start: both containers stopped, the time from psql's start to its
# answer (the data directory in place), COLD times each way
COLD=${COLD:-5}
declare -A cold
coldone() { # NAME PORT
  as_user "$USER_" systemctl --user stop "$p-$1-activator.service" "$p-$1.service"
  while [[ $(as_user "$USER_" systemctl --user is-active "$p-$1.service") != inactive ]]; do sleep 0.1; done
  local t0 t1
  t0=$(date +%s%N)
  "$PSQL" -X -q -h 127.0.0.1 -p "$2" -U postgres -c 'select 1' >/dev/null
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
for r in $(seq "$COLD"); do
  cold[handoff]+="$(coldone ho "$HO_PORT") "
  cold[proxy]+="$(coldone px "$PX_PORT") "
done
echo "cold starts (ms): handoff ${cold[handoff]}; proxy ${cold[proxy]}" >&2

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "Machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(podman --version), $("$PGBENCH" --version)"
echo "Command: test/bench/handoff.sh $ROUNDS (pgbench -T $T per run, median of $ROUNDS rounds)"
echo
echo "| pgbench | handoff tps | proxy tps | in-netns tps | handoff / in-netns | proxy / in-netns |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for s in "${scens[@]}"; do
  h=$(median "${tps[handoff,$s]}"); x=$(median "${tps[proxy,$s]}"); n=$(median "${tps[in-netns,$s]}")
  printf '| `-n %s -j 2` | %.0f | %.0f | %.0f | %.2f× | %.2f× |\n' "$s" "$h" "$x" "$n" \
    "$(awk -v a="$h" -v b="$n" 'BEGIN {print a/b}')" "$(awk -v a="$x" -v b="$n" 'BEGIN {print a/b}')"
done
echo
echo "| cold start, first psql to its answer (median of $COLD) | handoff | proxy |"
echo "| --- | ---: | ---: |"
echo "| PostgreSQL, data directory in place, Notify=true | $(median "${cold[handoff]}") ms | $(median "${cold[proxy]}") ms |"
