#!/usr/bin/env bash
# purge-check.sh - apt-get purge brothaman, then check that nothing of it is
# left (make deb-purge, the last step of make check):
#   * no file or link of the package (dpkg -L, taken before the purge), and
#     no directory of its own (/usr/libexec/brothaman, /usr/share/doc/brothaman)
#   * no hooks.d JSON of ours, and no hooks.d JSON anywhere whose hook binary
#     is missing (the README: it can stop Podman from creating containers;
#     Podman 4.3.1 here skips such a file, but it is a leftover either way)
#   * no bro-generator link in a generator directory
#   * Podman still runs a container, rootful (with the rig's runtime,
#     ROOT_RUNTIME as in test/bats/helpers.bash) and rootless (RIG_USER)
set -euo pipefail
PKG=brothaman
ROOT_RUNTIME=${ROOT_RUNTIME-/usr/local/bin/runc-sandbox}
BBOX_IMAGE=${BBOX_IMAGE:-localhost/bbox:latest}
RIG_USER=${RIG_USER:-lingeruser}
# shellcheck source=../rig/as-user.sh
source "$(dirname "$0")/../rig/as-user.sh"
export DEBIAN_FRONTEND=noninteractive
[[ $(id -u) -eq 0 ]] || { echo "purge-check.sh: run as root" >&2; exit 1; }

fails=0
bad() { printf 'purge-check: %s\n' "$*" >&2; fails=$((fails + 1)); }

dpkg-query -W -f='${db:Status-Abbrev}' $PKG 2>/dev/null | grep -q '^ii' ||
  { echo "purge-check.sh: $PKG is not installed (make deb-install)" >&2; exit 1; }
list=$(mktemp) log=$(mktemp); trap 'rm -f "$list" "$log"' EXIT
dpkg -L $PKG >"$list"
echo "purging $PKG ($(grep -c . "$list") paths)"
if ! apt-get purge -y -qq -o Dpkg::Use-Pty=0 $PKG >"$log" 2>&1; then
  cat "$log" >&2; echo "purge-check.sh: apt-get purge $PKG failed" >&2; exit 1
fi
# Debian 12 is merged-/usr but systemd ships its generators as
# /lib/systemd/system-generators: dpkg thinks the /usr path was ours alone,
# tries to remove it and warns that it is not empty. That is expected.
grep -v -e "directory '/usr/lib/systemd/system-generators' not empty so not removed" \
        -e '^(Reading database' -e '^Removing ' -e '^Purging ' -e '^Processing triggers' "$log" || true

# the package is gone from dpkg's database (purged, not just removed)
st=$(dpkg-query -W -f='${db:Status-Abbrev}' $PKG 2>/dev/null || true)
[[ -z $st || $st == un* ]] || bad "dpkg still knows $PKG: status '$st'"
compgen -G "/var/lib/dpkg/info/$PKG.*" >/dev/null && bad "dpkg's files of $PKG are left: $(echo /var/lib/dpkg/info/$PKG.*)"

# every file and link it had
while read -r p; do
  [[ -d $p && ! -L $p ]] && continue     # shared directories (/usr/bin) stay
  [[ -e $p || -L $p ]] && bad "left after purge: $p"
done <"$list"
for d in /usr/libexec/brothaman /usr/share/doc/$PKG; do
  [[ -e $d ]] && bad "left after purge: directory $d"
done

# hooks.d: ours gone, and every other hook's binary exists
for dir in /usr/share/containers/oci/hooks.d /etc/containers/oci/hooks.d; do
  [[ -d $dir ]] || continue
  for j in "$dir"/*.json; do
    [[ -e $j ]] || continue
    case ${j##*/} in 50-bro-activate-*) bad "hooks.d JSON left: $j" ;; esac
    h=$(jq -r '.hook.path // empty' "$j" 2>/dev/null) || { bad "unreadable hooks.d JSON: $j"; continue; }
    [[ -n $h && -x $h ]] || bad "$j names hook '$h', which is missing"
  done
done

# generators
for d in /usr/lib/systemd/system-generators /usr/lib/systemd/user-generators \
         /lib/systemd/system-generators /lib/systemd/user-generators \
         /usr/local/lib/systemd/system-generators /usr/local/lib/systemd/user-generators \
         /etc/systemd/system-generators /etc/systemd/user-generators; do
  [[ -e $d/bro-generator || -L $d/bro-generator ]] && bad "generator left: $d/bro-generator -> $(readlink "$d/bro-generator")"
done

# Podman still creates containers
rt=(); [[ -n $ROOT_RUNTIME ]] && rt=(--runtime "$ROOT_RUNTIME")
if out=$(timeout 120 podman "${rt[@]}" run --rm "$BBOX_IMAGE" true 2>&1); then
  echo "podman run --rm $BBOX_IMAGE true: ok (rootful)"
else
  bad "rootful podman run --rm $BBOX_IMAGE true failed after the purge: $out"
fi
if id "$RIG_USER" >/dev/null 2>&1; then
  uid=$(id -u "$RIG_USER")
  if out=$(as_user "$RIG_USER" timeout 120 podman run --rm "$BBOX_IMAGE" true 2>&1); then
    echo "podman run --rm $BBOX_IMAGE true: ok (rootless, $RIG_USER)"
  else
    bad "rootless ($RIG_USER) podman run --rm $BBOX_IMAGE true failed after the purge: $out"
  fi
fi

(( fails == 0 )) || { echo "purge-check: $fails problem(s) after apt-get purge $PKG" >&2; exit 1; }
echo "purge-check: nothing of $PKG is left"
