#!/usr/bin/env bash
# version.sh - print the Debian package version for this checkout.
#
# Made from `git describe --tags --always --dirty` (the Makefile's VERSION,
# the one stamped into the binaries), so that versions sort as the history
# does under dpkg --compare-versions:
#
#   v1.2.3                 -> 1.2.3-1
#   v1.2.3-rc1             -> 1.2.3~rc1-1             (before 1.2.3-1)
#   v1.2.3-4-gabc1234      -> 1.2.3+git20261201.4.abc1234-1
#   abc1234 (no tag)       -> 0.0~git20261201.38.abc1234-1  (before any tag)
#   ...-dirty              -> ...+dirty-1             (after the clean build)
#
# -1 is the Debian revision: not a native package, so the changelog is
# changelog.Debian.gz.
#
# The date is the described commit's committer date (UTC) and the number
# counts commits (since the tag, or in all), so two snapshots of one day sort
# by history; the same describe string always gives the same version.
# Usage: version.sh [GIT_DESCRIBE]   (default: run git describe here)
set -euo pipefail
cd "$(dirname "$0")/../.."

desc=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
dirty=
if [[ $desc == *-dirty ]]; then dirty=+dirty; desc=${desc%-dirty}; fi

# stamp COMMIT: its committer date, YYYYMMDD in UTC
stamp() { TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d "$1" 2>/dev/null | tr -d '\n'; }

# --always gives an abbreviated hash (7+ hex digits) when there is no tag
if [[ $desc =~ ^[0-9a-f]{7,40}$ ]]; then
  v="0.0~git$(stamp "$desc").$(git rev-list --count "$desc" 2>/dev/null || echo 0).$desc"
elif [[ $desc =~ ^v?([0-9][0-9A-Za-z.]*)(-(alpha|beta|rc|pre)[.]?([0-9A-Za-z.]*))?(-([0-9]+)-g([0-9a-f]+))?$ ]]; then
  v=${BASH_REMATCH[1]}
  [[ -n ${BASH_REMATCH[2]} ]] && v+="~${BASH_REMATCH[3]}${BASH_REMATCH[4]}"
  [[ -n ${BASH_REMATCH[5]} ]] && v+="+git$(stamp "${BASH_REMATCH[7]}").${BASH_REMATCH[6]}.${BASH_REMATCH[7]}"
else
  # no git (a tarball): still a valid version, older than any snapshot
  v="0.0~${desc//[^A-Za-z0-9.+~]/.}"
  [[ $v =~ ^0\.0~[A-Za-z0-9] ]] || v=0.0~unknown
fi
v+=$dirty-1
# what dpkg accepts (no epoch; upstream version, one revision)
[[ $v =~ ^[0-9][A-Za-z0-9.+~]*-[0-9]+$ ]] || { echo "version.sh: cannot make a Debian version of '$desc' (got '$v')" >&2; exit 1; }
echo "$v"
