#!/usr/bin/env bash
# test/bench/pgprof.sh MODE [BRO_PROXY] [-- PGBENCH_ARGS...] - one bro-proxy
# under pgbench on the path users run, looked at one way (docs/bench.md,
# "Data path"): a rootless `bro-proxy --pid` of the rig user in front of a
# Network=none PostgreSQL container of that user, pgbench from the host.
#   cpu     proxy CPU per transaction: utime+stime (/proc/PID/stat, its
#           threads and the namespace helper's) over a 12 s pgbench run
#   strace  system calls of the proxy's threads for 4 s (strace -c -f), per
#           connection accepted meanwhile (with -C: per transaction)
#   perf    perf record -g of the proxy for 8 s, the top symbols
# BRO_PROXY defaults to this tree's bin/bro-proxy; PGBENCH_ARGS to
# `-S -C -c 4 -j 2`. Alternate two builds to compare them: the machine
# varies by more than most changes between two runs minutes apart.
# As root (nsenter for pgbench's schema); removes its container at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: pgprof.sh cpu|strace|perf [BRO_PROXY] [-- PGBENCH_ARGS...]}
shift
bin=$PWD/bin/bro-proxy
if [[ $# -gt 0 && $1 != -- ]]; then bin=$1; shift; fi
[[ ${1:-} == -- ]] && shift
args=("$@")
(( ${#args[@]} )) || args=(-S -C -c 4 -j 2)
case $mode in cpu|strace|perf) ;; *) echo "pgprof.sh: mode $mode: want cpu, strace or perf" >&2; exit 2;; esac
(( EUID == 0 )) || { echo "pgprof.sh: run as root" >&2; exit 1; }
[[ -x $bin ]] || { echo "pgprof.sh: $bin: not an executable (make build)" >&2; exit 1; }
[[ $mode == cpu ]] || command -v "$mode" >/dev/null || { echo "pgprof.sh: $mode is not installed" >&2; exit 1; }

PGBENCH=${PGBENCH:-/usr/lib/postgresql/15/bin/pgbench}
PSQL=${PSQL:-/usr/lib/postgresql/15/bin/psql}
# shellcheck source=../rig/as-user.sh
source test/rig/as-user.sh

name=pgprof-$$
port=$(( 20000 + RANDOM % 10000 ))
USER_=${RIG_USER:-lingeruser}
work=$(mktemp -d /tmp/pgprof.XXXXXX)
chmod 755 "$work"
install -m 0644 -o "$USER_" /dev/null "$work/proxy.log"
install -m 0755 "$bin" "$work/bro-proxy"
px=
sa=
cleanup() {
  [[ -n $px ]] && kill "$px" 2>/dev/null
  [[ -n $sa ]] && kill "$sa" 2>/dev/null
  as_user "$USER_" podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_user "$USER_" podman run -d --name "$name" --network none -e POSTGRES_HOST_AUTH_METHOD=trust localhost/postgres:15 >/dev/null
cpid=$(as_user "$USER_" podman inspect -f '{{.State.Pid}}' "$name")
# systemd-socket-activate execs bro-proxy at the first connection
as_user "$USER_" bash -c "cd /tmp && exec systemd-socket-activate -l 127.0.0.1:$port $work/bro-proxy --pid $cpid 127.0.0.1:5432 >$work/proxy.log 2>&1" </dev/null >/dev/null 2>&1 &
sa=$!
for _ in $(seq 120); do
  "$PSQL" -h 127.0.0.1 -p "$port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break
  sleep 0.5
done
px=$(pgrep -u "$USER_" -f "^$work/bro-proxy --pid $cpid" | head -1) || true
[[ -n $px ]] || { echo "pgprof.sh: bro-proxy did not start or PostgreSQL did not answer through it" >&2; cat "$work/proxy.log" >&2; exit 1; }
"$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -i -q postgres >/dev/null 2>&1

# every process of the proxy's tree: bro-proxy and its namespace helper
ticks() {
  local t=0 p
  for p in "$px" $(pgrep -P "$px"); do
    t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$t"
}

t0=$(ticks)
"$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -n "${args[@]}" -T 12 postgres >"$work/pgbench.log" 2>&1 &
pg=$!
sleep 2
case $mode in
strace) timeout -s INT 4 strace -c -f -p "$px" -o "$work/strace.out" 2>/dev/null || true ;;
perf) perf record -q -F 1999 -g -p "$px" -o "$work/perf.data" -- sleep 8 2>/dev/null ;;
esac
wait "$pg" || true
t1=$(ticks)
n=$(awk '/number of transactions actually processed/ { print $NF }' "$work/pgbench.log")
[[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "pgprof.sh: pgbench failed:" >&2; cat "$work/pgbench.log" >&2; exit 1; }
echo "pgbench ${args[*]}: $n transactions, $(grep -E '^tps' "$work/pgbench.log" | head -1)"
if [[ $mode == cpu ]]; then
  echo "proxy CPU: $(( t1 - t0 )) ticks: $(awk -v t=$(( t1 - t0 )) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }') us per transaction"
fi
case $mode in
strace)
  # a connection is an accept4 that returned one (calls minus errors)
  c=$(awk '$NF == "accept4" { print $4 - ($6 == "accept4" ? $5 : 0) }' "$work/strace.out")
  echo "system calls of the proxy in 4 s, per accepted connection ($c; with -C, one per transaction):"
  awk -v n="${c:-0}" 'n > 0 && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ { printf "  %-14s %7.2f\n", $NF, $4 / n }' "$work/strace.out" | sort -k2 -nr | head -20 ;;
perf)
  perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep '%' | head -40 ;;
esac
