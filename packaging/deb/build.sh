#!/usr/bin/env bash
# build.sh - build the Debian package brothaman_VERSION_ARCH.deb with
# dpkg-deb (make deb). No debhelper, no source package: the tree is what
# `make install` puts under DESTDIR with PREFIX=/usr (the same hooks.d JSON,
# rendered the same way), then made Debian-shaped:
#
#   binaries   -trimpath -buildmode=pie, -ldflags "-s -w" plus the Makefile's
#              version stamp; cgo with dpkg-buildflags' hardening flags
#   links      generator links relative (Policy 10.5: within /usr)
#   man pages  gzip -9n; bro-activate-direct.1.gz a link to bro-activate.1.gz
#   doc        README.md.gz, copyright (DEP-5), changelog.Debian.gz
#   control    Depends: podman (>= 4.3), systemd, and libc6 from dpkg-shlibdeps
#
# Every mtime is the commit time (SOURCE_DATE_EPOCH) and gzip stores no name
# or time, so two builds of one commit give the same package. lintian runs on
# the result when it is installed (test/rig/rig-up.sh installs it); a tag it
# reports that packaging/deb/lintian-overrides does not explain fails the
# build.
#
# Environment (the Makefile sets them): VERSION (git describe), DEB_VERSION
# (packaging/deb/version.sh), DEB_ARCH, OUT (bin), DEB (the output file),
# MAKE, LINTIAN (auto|yes|no).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOP=$PWD
t0=$(date +%s%N)

MAKE=${MAKE:-make}
OUT=${OUT:-bin}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
DEB_VERSION=${DEB_VERSION:-$(packaging/deb/version.sh "$VERSION")}
DEB_ARCH=${DEB_ARCH:-$(dpkg --print-architecture)}
DEB=${DEB:-$OUT/brothaman_${DEB_VERSION}_${DEB_ARCH}.deb}
LINTIAN=${LINTIAN:-auto}
MAINTAINER=${DEB_MAINTAINER:-Brothaman maintainers <maintainers@users.noreply.r-seed-ff86ea9e.example>}
PKG=brothaman
SRC=packaging/deb
OUT=$(realpath -m "$OUT") DEB=$(realpath -m "$DEB")
WORK=$OUT/deb                 # binaries, man pages, completions of the package build
STAGE=$WORK/root              # the package's tree

die() { printf 'make deb: %s\n' "$*" >&2; exit 1; }
for t in dpkg-deb dpkg-shlibdeps go-md2man gzip objcopy; do
  command -v "$t" >/dev/null ||
    die "$t not found (apt-get install dpkg-dev go-md2man binutils; test/rig/rig-up.sh installs them)"
done
# Completions come from the completions target (bro-activate completion …).
"$MAKE" -n --no-print-directory completions OUT="$WORK" >/dev/null 2>&1 ||
  die "the Makefile has no 'completions' target: it writes $OUT/completions/{bash,zsh,fish}/, which the package ships"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD 2>/dev/null || date +%s)}
export TZ=UTC LC_ALL=C.UTF-8
umask 022

# ------------------------------------------------------------ the tree
rm -rf "$STAGE"
mkdir -p "$STAGE" "$(dirname "$DEB")"
# cgo (bro-proxy's namespace helper) gets Debian's hardening flags: stack
# protector, _FORTIFY_SOURCE, relro, bindnow. Every binary is linked by the
# system linker (-linkmode=external), so that relro and bindnow apply also
# to the ones whose only cgo is net's resolver (bro-hook, bro-activate): Go's
# own linker would leave them without BIND_NOW (lintian: hardening-no-bindnow).
export DEB_BUILD_MAINT_OPTIONS=${DEB_BUILD_MAINT_OPTIONS:-hardening=+all}
CGO_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
CGO_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
export CGO_CFLAGS CGO_LDFLAGS CGO_ENABLED=1
"$MAKE" --no-print-directory install \
  DESTDIR="$STAGE" PREFIX=/usr OUT="$WORK" VERSION="$VERSION" \
  ZSHCOMPDIR=/usr/share/zsh/vendor-completions \
  BUILDFLAGS=-buildmode=pie EXTRA_LDFLAGS='-s -w' CMD_LDFLAGS=-linkmode=external >"$WORK.install.log" 2>&1 ||
  { cat "$WORK.install.log" >&2; die "make install into $STAGE failed (log above)"; }

cd "$STAGE"
# gcc's .comment (cgo's external link) is not needed at run time; dh_strip
# removes it too
for b in usr/bin/bro-proxy usr/bin/bro-activate usr/libexec/brothaman/bro-hook; do
  objcopy --remove-section=.comment "$b"
done
# relative links within /usr (make install writes absolute ones)
for g in usr/lib/systemd/system-generators/bro-generator usr/lib/systemd/user-generators/bro-generator; do
  [[ -L $g ]] || die "$g: not installed as a link"
  ln -sfn ../../../bin/bro-activate "$g"
done
# man pages compressed; the link follows its target's new name
for f in usr/share/man/man*/*; do
  if [[ -L $f ]]; then
    t=$(readlink "$f"); rm "$f"; ln -s "${t##*/}.gz" "$f.gz"
  else
    gzip -9n "$f"
  fi
done
install -d -m 0755 usr/share/doc/$PKG
gzip -9nc <"$TOP/README.md" >usr/share/doc/$PKG/README.md.gz
install -m 0644 "$TOP/$SRC/copyright" usr/share/doc/$PKG/copyright
{
  printf '%s (%s) unstable; urgency=medium\n\n' "$PKG" "$DEB_VERSION"
  printf '  * Built from git %s (git describe: %s).\n\n' \
    "$(git -C "$TOP" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" "$VERSION"
  printf ' -- %s  %s\n' "$MAINTAINER" "$(date -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >usr/share/doc/$PKG/changelog.Debian.gz
# overrides: the file minus its comments, when it names a tag
if grep -qv '^[[:space:]]*\(#\|$\)' "$TOP/$SRC/lintian-overrides" 2>/dev/null; then
  install -d -m 0755 usr/share/lintian/overrides
  install -m 0644 "$TOP/$SRC/lintian-overrides" usr/share/lintian/overrides/$PKG
fi
cd "$TOP"

# ------------------------------------------------------- what is in it
# Exactly these (test/bats/050-install.bats checks the built package too).
expect=(
  usr/bin/bro-activate usr/bin/bro-activate-direct usr/bin/bro-proxy
  usr/lib/systemd/system-generators/bro-generator
  usr/lib/systemd/user-generators/bro-generator
  usr/libexec/brothaman/bro-hook
  usr/share/bash-completion/completions/bro-activate
  usr/share/bash-completion/completions/bro-activate-direct
  usr/share/bash-completion/completions/bro-proxy
  usr/share/containers/oci/hooks.d/50-bro-activate-poststop.json
  usr/share/containers/oci/hooks.d/50-bro-activate-precreate.json
  usr/share/containers/oci/hooks.d/50-bro-activate-prestart.json
  usr/share/doc/brothaman/README.md.gz
  usr/share/doc/brothaman/changelog.Debian.gz
  usr/share/doc/brothaman/copyright
  usr/share/fish/vendor_completions.d/bro-activate-direct.fish
  usr/share/fish/vendor_completions.d/bro-activate.fish
  usr/share/fish/vendor_completions.d/bro-proxy.fish
  usr/share/man/man1/bro-activate-direct.1.gz
  usr/share/man/man1/bro-activate.1.gz
  usr/share/man/man1/bro-hook.1.gz
  usr/share/man/man1/bro-proxy.1.gz
  usr/share/man/man7/brothaman.7.gz
  usr/share/zsh/vendor-completions/_bro-activate
  usr/share/zsh/vendor-completions/_bro-proxy
)
[[ -d $STAGE/usr/share/lintian ]] && expect+=(usr/share/lintian/overrides/brothaman)
got=$(cd "$STAGE" && find . ! -type d -printf '%P\n' | LC_ALL=C sort)
want=$(printf '%s\n' "${expect[@]}" | LC_ALL=C sort)
if [[ $got != "$want" ]]; then
  diff <(echo "$want") <(echo "$got") | sed -n 's/^</  missing:/p; s/^>/  unexpected:/p' >&2 || true
  die "the package tree differs from the expected file list (above)"
fi
# the hooks.d JSON names the packaged hook
for s in precreate prestart poststop; do
  grep -q '"path": "/usr/libexec/brothaman/bro-hook"' \
    "$STAGE/usr/share/containers/oci/hooks.d/50-bro-activate-$s.json" ||
    die "50-bro-activate-$s.json does not name /usr/libexec/brothaman/bro-hook"
done
# nothing setuid/setgid (file capabilities do not survive dpkg-deb anyway)
[[ -z $(find "$STAGE" -perm /6000) ]] || die "setuid/setgid files in the tree"

# Every Go module linked into a binary has a paragraph in copyright.
elves=("$STAGE/usr/bin/bro-proxy" "$STAGE/usr/bin/bro-activate" "$STAGE/usr/libexec/brothaman/bro-hook")
for m in $(go version -m "${elves[@]}" | awk '$1 == "dep" {print $2}' | sort -u); do
  mod=${m%/v[0-9]*}   # github.com/coreos/go-systemd/v22 -> …/go-systemd
  grep -q "^Files: vendor/$mod/\*\|^ *vendor/$mod/\*" "$SRC/copyright" ||
    die "$m is linked into the binaries but has no Files: vendor/$mod/* paragraph in $SRC/copyright"
done

# ---------------------------------------------------------- control
# libc6 from the binaries' symbols, as dpkg-shlibdeps sees them (it needs a
# debian/control beside it).
shl=$(mktemp -d); trap 'rm -rf "$shl"' EXIT
mkdir "$shl/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >"$shl/debian/control"
shlibs=$(cd "$shl" && dpkg-shlibdeps -O "${elves[@]}" 2>"$shl/err") ||
  { cat "$shl/err" >&2; die "dpkg-shlibdeps failed"; }
shlibs=${shlibs#shlibs:Depends=}
[[ $shlibs == *libc6* ]] || die "dpkg-shlibdeps found no libc6 dependency ('$shlibs')"
depends="podman (>= 4.3), systemd, $shlibs"

size=$(du -sk --apparent-size "$STAGE" | cut -f1)
install -d -m 0755 "$STAGE/DEBIAN"
sed -e "s|@VERSION@|$DEB_VERSION|" -e "s|@ARCH@|$DEB_ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" \
    -e "s|@INSTALLED_SIZE@|$size|" -e "s|@DEPENDS@|$depends|" "$SRC/control.in" >"$STAGE/DEBIAN/control"
! grep -n '@[A-Z_]*@' "$STAGE/DEBIAN/control" || die "control: placeholder left"
(cd "$STAGE" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ------------------------------------------------------------ the .deb
# older packages out of the way: ./bin/brothaman_*.deb is then this one
find "$(dirname "$DEB")" -maxdepth 1 -name "${PKG}_*.deb" ! -name "$(basename "$DEB")" -delete
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB.tmp" >/dev/null
mv -f "$DEB.tmp" "$DEB"

if [[ $LINTIAN == yes || ( $LINTIAN == auto && -x $(command -v lintian) ) ]]; then
  # --fail-on warning,error; info and pedantic tags are printed, and a tag
  # that is neither fixed nor overridden (with its reason) fails the build
  # too: lintian clean means no output at all.
  # (as root it warns that it runs as root: that line is dropped)
  lint=$(lintian --display-info --pedantic --fail-on error,warning "$DEB" 2>&1) ||
    { echo "$lint" >&2; die "lintian failed on $DEB"; }
  lint=$(grep -v '^running with root privileges is not recommended!$' <<<"$lint" || true)
  [[ -z $lint ]] || { echo "$lint" >&2; die "lintian reports tags (fix them or explain them in $SRC/lintian-overrides)"; }
  echo "lintian: clean ($(lintian --version))"
elif [[ $LINTIAN != no ]]; then
  echo "lintian: not installed, not run (apt-get install lintian)"
fi
printf '%s: %s files, %s KiB installed, built in %d.%ds\n' "$DEB" "${#expect[@]}" "$size" \
  $(( ($(date +%s%N) - t0) / 1000000000 )) $(( ($(date +%s%N) - t0) / 100000000 % 10 ))
