#!/usr/bin/env bash
# demo.sh - the main job, for real: a Network=none PostgreSQL quadlet with
# Annotation=bro.activate, started by the first psql connection through
# bro-proxy. Run as root from the repository (make demo); make demo-clean
# removes what it made.
#
#   DEMO_USER (lingeruser)  the unprivileged user who owns the container
#   DEMO_PORT (15432)       the loopback port the socket listens on
set -euo pipefail
cd "$(dirname "$0")/../.."

DEMO_USER=${DEMO_USER:-lingeruser}
DEMO_PORT=${DEMO_PORT:-15432}
NAME=demo-postgresql
PG_IMAGE=${PG_IMAGE:-localhost/postgres:15}
PSQL=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL ]] || PSQL=psql

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it sets up a user and installs the project)" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# shellcheck source=../rig/as-user.sh
source test/rig/as-user.sh
demo_user() { as_user "$DEMO_USER" "$@"; }
uctl() { demo_user systemctl --user "$@"; }
states() {
  local u
  for u in "$NAME.service" "$NAME-activator.socket" "$NAME-activator.service"; do
    printf '   %-34s %s\n' "$u" "$(uctl is-active "$u" 2>/dev/null || true)"
  done
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
psql_once() { PGPASSWORD=password PGCONNECT_TIMEOUT=60 "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$DEMO_PORT" -U postgres -c "$1"; }

say "1. the rig: rootless Podman, quadlet and a systemd --user manager for $DEMO_USER"
# idempotent: prints ok for what is there, builds what is missing
bash test/rig/rig-up.sh | grep -E '^(==|  did|  WARN|FAIL)' | sed 's/^/   /'

say "2. install the Debian package (make deb; apt-get install ./bin/brothaman_*.deb): bro-proxy, bro-activate, the OCI hook in hooks.d, the generator"
# the same route as make check (make deb-install), so that the two never
# leave two installs sharing the hooks.d file names
make -s --no-print-directory deb-install | sed 's/^/   /'
ls -l /usr/bin/bro-proxy /usr/bin/bro-activate /usr/share/containers/oci/hooks.d/50-bro-activate-*.json | sed 's/^/   /'

home=$(getent passwd "$DEMO_USER" | cut -d: -f6)
# run again, the demo starts over: what a previous run left (make check
# purges the package, not the demo's units) would make bro-activate refuse
if [[ -e $home/.config/containers/systemd/$NAME.container || -e $home/.config/systemd/user/$NAME-activator.socket ]]; then
  echo "   a previous demo is in place: removing it first (make demo-clean)"
  bash test/demo/clean.sh | sed 's/^/   /'
fi

if ss -Hltn "sport = :$DEMO_PORT" | grep -q .; then
  echo "demo: port $DEMO_PORT is taken (a previous demo? make demo-clean), or set DEMO_PORT" >&2; exit 1
fi

say "3. the quadlet: Network=none, a volume, and one annotation"
demo_user mkdir -p "$home/.config/containers/systemd" "$home/$NAME-data"
demo_user tee "$home/.config/containers/systemd/$NAME.container" >/dev/null <<QUADLET
[Unit]
Description=PostgreSQL on demand (Brothaman demo)

[Container]
Image=$PG_IMAGE
ContainerName=$NAME
Environment=POSTGRES_PASSWORD=password
Volume=$home/$NAME-data:/var/lib/postgresql/data
Network=none
# ready when postgres says so (sd_notify), not when its process starts
Notify=true
Annotation=bro.activate=127.0.0.1:$DEMO_PORT:5432
QUADLET
sed 's/^/   /' "$home/.config/containers/systemd/$NAME.container"

say "4. bro-activate $NAME"
demo_user bro-activate "$NAME" | sed 's/^/   /'
uctl daemon-reload
uctl enable --now "$NAME-activator.socket" 2>&1 | sed 's/^/   /'

say "5. before the first connection: only the socket"
states

say "6. psql connects: the container starts (cold start)"
t0=$(now_ms)
v=$(psql_once 'select version()')
t1=$(now_ms)
echo "   $v"
echo "   cold start, first psql to its answer: $(( t1 - t0 )) ms"

say "7. after: all three active"
states

say "8. warm: psql again (container running)"
warm=()
for _ in 1 2 3 4 5; do
  t0=$(now_ms); psql_once 'select 1' >/dev/null; t1=$(now_ms); warm+=($(( t1 - t0 )))
done
echo "   five warm psql runs: ${warm[*]} ms"

say "9. stop the container; the socket stays; the next psql starts it again"
uctl stop "$NAME.service"
states
t0=$(now_ms); psql_once 'select 1' >/dev/null; t1=$(now_ms)
echo "   cold start with the data directory in place: $(( t1 - t0 )) ms (the first one ran initdb)"

say "10. what bro-proxy logged"
demo_user journalctl --user -o cat --no-pager -u "$NAME-activator.service" 2>/dev/null | sed 's/^/   /' | tail -8

cat <<DONE

Done. The socket keeps listening on 127.0.0.1:$DEMO_PORT; connect any time:
   PGPASSWORD=password psql -h 127.0.0.1 -p $DEMO_PORT -U postgres
Clean up with:  make demo-clean
DONE
