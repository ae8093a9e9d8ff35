#!/usr/bin/env bash
# clean.sh - remove what demo.sh made (units, quadlet, data, container).
set -uo pipefail
DEMO_USER=${DEMO_USER:-lingeruser}
NAME=demo-postgresql
id "$DEMO_USER" >/dev/null 2>&1 || exit 0
uid=$(id -u "$DEMO_USER"); home=$(getent passwd "$DEMO_USER" | cut -d: -f6)
as_user() {
  runuser -u "$DEMO_USER" -- env -i HOME="$home" USER="$DEMO_USER" LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$uid" bash -c 'cd /tmp && "$@"' bash "$@"
}
as_user systemctl --user disable --now "$NAME-activator.socket" 2>/dev/null
as_user systemctl --user stop "$NAME-activator.service" "$NAME.service" 2>/dev/null
# the package's (make demo installs it) or a make install copy's
[[ -x /usr/bin/bro-activate || -x /usr/local/bin/bro-activate ]] && as_user bro-activate --remove "$NAME" 2>/dev/null
rm -f "$home/.config/containers/systemd/$NAME.container"
as_user systemctl --user daemon-reload 2>/dev/null
as_user systemctl --user reset-failed "$NAME*" 2>/dev/null
as_user podman rm -f -t 0 "$NAME" >/dev/null 2>&1
[[ -d $home/$NAME-data ]] && as_user podman unshare rm -rf "$home/$NAME-data"
echo "demo removed"
