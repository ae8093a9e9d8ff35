#!/usr/bin/env bash
# install.sh DEB - install the Debian package just built (make deb-install,
# which make check and make demo run), the way a user would:
#   apt-get install ./bin/brothaman_VERSION_ARCH.deb
# A `make install` copy (/usr/local) is removed first: it writes the same
# hooks.d file names, and two installs would take turns owning them (the
# last one wins, and removing either leaves the other without its hook).
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=${1:?usage: install.sh DEB}
[[ -f $deb ]] || { echo "install.sh: $deb not found (make deb)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "install.sh: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

local_copy=()
for f in /usr/local/bin/bro-proxy /usr/local/bin/bro-activate /usr/local/libexec/brothaman/bro-hook \
         /usr/local/lib/systemd/system-generators/bro-generator /usr/local/lib/systemd/user-generators/bro-generator; do
  [[ -e $f || -L $f ]] && local_copy+=("$f")
done
if (( ${#local_copy[@]} )); then
  echo "removing the make install copy (${local_copy[*]}): the package replaces it"
  make -s --no-print-directory uninstall PREFIX=/usr/local >/dev/null
fi

# --reinstall: the same version again (a rebuilt working tree) is installed
# too; --allow-downgrades: an older checkout's package replaces a newer one
log=$(mktemp); trap 'rm -f "$log"' EXIT
if ! apt-get install -y -qq --reinstall --allow-downgrades -o Dpkg::Use-Pty=0 "$(realpath "$deb")" >"$log" 2>&1; then
  cat "$log" >&2; echo "install.sh: apt-get install $deb failed" >&2; exit 1
fi
# apt's note that root, not _apt, read the file is noise here
grep -v -e '^N: Download is performed unsandboxed' -e '^debconf: ' "$log" || true
st=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' brothaman 2>/dev/null) ||
  { echo "install.sh: brothaman is not installed after apt-get install $deb" >&2; exit 1; }
want=$(dpkg-deb -f "$deb" Version)
[[ ${st%%|*} == "ii " && ${st#*|} == "$want" ]] ||
  { echo "install.sh: dpkg has brothaman '${st/|/ }' after apt-get install, not 'ii $want'" >&2; exit 1; }
echo "installed brothaman $want from $deb"
