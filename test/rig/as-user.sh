# shellcheck shell=bash
# as-user.sh - the one as_user, sourced by test/rig/rig-up.sh,
# test/bats/helpers.bash and .ci/run (root's scripts acting as the rig users).
#
# as_user USER CMD...: run CMD as USER with a clean, complete environment, as
# a login would give it. runuser alone keeps root's environment (PWD, PATH,
# proxies, tokens); rootless podman cannot start from a directory the user
# cannot read (/root), hence cd /tmp. Pass variables with env:
# as_user U env X=1 CMD...   CMD may not be a shell function (it runs in a
# new bash as USER). ~/.local/bin comes first in PATH when it exists, as
# Debian's ~/.profile puts it: that is how p5user's `podman` is Podman 5.
as_user() {
  local user=$1 uid home path=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin; shift
  uid=$(id -u "$user") || return
  home=$(getent passwd "$user" | cut -d: -f6)
  [[ -d ${home:-/home/$user}/.local/bin ]] && path=${home:-/home/$user}/.local/bin:$path
  runuser -u "$user" -- env -i HOME="${home:-/home/$user}" USER="$user" LOGNAME="$user" \
    SHELL=/bin/bash LANG=C.UTF-8 PATH="$path" \
    XDG_RUNTIME_DIR="/run/user/$uid" DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" \
    bash -c 'cd /tmp && "$@"' bash "$@"
}
