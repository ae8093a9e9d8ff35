#!/usr/bin/env bash
# clean.sh - remove what demo.sh made (units, quadlet, data, container).
set -uo pipefail
DEMO_USER=${DEMO_USER:-lingeruser}
NAME=demo-postgresql
id "$DEMO_USER" >/dev/null 2>&1 || exit 0
uid=$(id -u "$DEMO_USER"); home=$(getent passwd "$DEMO_USER" | cut -d: -f6)
# shellcheck source=../rig/as-user.sh
source "$(dirname "$0")/../rig/as-user.sh"
demo_user() { as_user "$DEMO_USER" "$@"; }
demo_user systemctl --user disable --now "$NAME-activator.socket" 2>/dev/null
demo_user systemctl --user stop "$NAME-activator.service" "$NAME.service" 2>/dev/null
# the package's (make demo installs it) or a make install copy's
[[ -x /usr/bin/bro-activate || -x /usr/local/bin/bro-activate ]] && demo_user bro-activate --remove "$NAME" 2>/dev/null
rm -f "$home/.config/containers/systemd/$NAME.container"
demo_user systemctl --user daemon-reload 2>/dev/null
demo_user systemctl --user reset-failed "$NAME*" 2>/dev/null
demo_user podman rm -f -t 0 "$NAME" >/dev/null 2>&1
[[ -d $home/$NAME-data ]] && demo_user podman unshare rm -rf "$home/$NAME-data"
echo "demo removed"
