#!/usr/bin/env bats
# 050-install: the two install routes' layouts, without touching the
# machine. make install / make uninstall into a DESTDIR: every file where the
# README's table says, the hooks.d JSON naming the installed hook, nothing
# setuid or with file capabilities, nothing left after uninstall. make deb:
# dpkg-deb -c lists exactly the package's files.

load helpers

# install_into ROOT [VAR=VALUE...]: make install DESTDIR=ROOT PREFIX=/usr/local.
# The build goes to the test's own OUT, not the repository's bin/.
install_into() {
  local root=$1; shift
  run_cmd 0 make -C "$BRO_REPO" --no-print-directory -s install DESTDIR="$root" PREFIX=/usr/local \
    OUT="$BATS_FILE_TMPDIR/out" "$@"
}

# tree ROOT: "TYPE MODE PATH[ -> TARGET]" for every file and link under ROOT.
tree() {
  (cd "$1" && find . ! -type d -printf '%y %m %P -> %l\n' | sed 's/ -> $//' | LC_ALL=C sort)
}

@test "make install DESTDIR=… PREFIX=/usr/local: binaries, hook, hooks.d, generators, man pages, completions" {
  local root=$BATS_TEST_TMPDIR/root
  install_into "$root"
  run_cmd 0 tree "$root"
  assert_output "f 644 usr/local/share/bash-completion/completions/bro-activate
f 644 usr/local/share/bash-completion/completions/bro-proxy
f 644 usr/local/share/fish/vendor_completions.d/bro-activate-direct.fish
f 644 usr/local/share/fish/vendor_completions.d/bro-activate.fish
f 644 usr/local/share/fish/vendor_completions.d/bro-proxy.fish
f 644 usr/local/share/man/man1/bro-activate.1
f 644 usr/local/share/man/man1/bro-hook.1
f 644 usr/local/share/man/man1/bro-proxy.1
f 644 usr/local/share/man/man7/brothaman.7
f 644 usr/local/share/zsh/site-functions/_bro-activate
f 644 usr/local/share/zsh/site-functions/_bro-proxy
f 644 usr/share/containers/oci/hooks.d/50-bro-activate-poststop.json
f 644 usr/share/containers/oci/hooks.d/50-bro-activate-precreate.json
f 644 usr/share/containers/oci/hooks.d/50-bro-activate-prestart.json
f 755 usr/local/bin/bro-activate
f 755 usr/local/bin/bro-proxy
f 755 usr/local/libexec/brothaman/bro-hook
l 777 usr/local/bin/bro-activate-direct -> bro-activate
l 777 usr/local/lib/systemd/system-generators/bro-generator -> /usr/local/bin/bro-activate
l 777 usr/local/lib/systemd/user-generators/bro-generator -> /usr/local/bin/bro-activate
l 777 usr/local/share/bash-completion/completions/bro-activate-direct -> bro-activate
l 777 usr/local/share/man/man1/bro-activate-direct.1 -> bro-activate.1"
  # the programs are the ones just built, and say so
  run_cmd 0 "$root/usr/local/bin/bro-proxy" --version
  assert_output --regexp '^bro-proxy .+'
  run_cmd 0 "$root/usr/local/libexec/brothaman/bro-hook" --version
  assert_output --regexp '^bro-hook .+'
  # the man pages are roff that man reads without a warning (on stderr)
  for m in man1/bro-proxy.1 man1/bro-activate.1 man1/bro-activate-direct.1 man1/bro-hook.1 man7/brothaman.7; do
    run_cmd 0 bash -c 'MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null' bash "$root/usr/local/share/man/$m"
    assert_output ""
    run_cmd 0 env MANWIDTH=80 man -l "$root/usr/local/share/man/$m"
    assert_output --partial "${m:5:${#m}-7}"
  done
}

@test "make install: the hooks.d JSON names the installed hook, one stage per file, and Podman's schema" {
  local root=$BATS_TEST_TMPDIR/root stage j
  install_into "$root" LIBEXECDIR=/opt/bro/lib
  for stage in precreate prestart poststop; do
    j=$root/usr/share/containers/oci/hooks.d/50-bro-activate-$stage.json
    run_cmd 0 jq -c '[.version, .hook.path, .hook.args, .stages, .when.annotations]' "$j"
    assert_output "[\"1.0.0\",\"/opt/bro/lib/brothaman/bro-hook\",[\"bro-hook\",\"$stage\"],[\"$stage\"],{\"^bro\\\\.activate$\":\".*\"}]"
    run_cmd 1 grep '@[A-Z_]*@' "$j"
  done
  [[ -x $root/opt/bro/lib/brothaman/bro-hook ]] || fail "the hook is not where its JSON says"
}

@test "make install: nothing setuid, setgid, world-writable or with file capabilities" {
  requires cmd:getcap
  local root=$BATS_TEST_TMPDIR/root
  install_into "$root"
  run_cmd 0 find "$root" -perm /6000
  assert_output ""
  run_cmd 0 find "$root" ! -type l -perm /0022
  assert_output ""
  run_cmd 0 getcap -r "$root"
  assert_output ""
  run_cmd 0 find "$root" ! -user root -o ! -group root
  assert_output ""
}

@test "make uninstall DESTDIR=… PREFIX=/usr/local leaves no file and no link" {
  local root=$BATS_TEST_TMPDIR/root
  install_into "$root"
  run_cmd 0 make -C "$BRO_REPO" --no-print-directory -s uninstall DESTDIR="$root" PREFIX=/usr/local
  run_cmd 0 find "$root" ! -type d
  assert_output ""
  # and it is safe to run again
  run_cmd 0 make -C "$BRO_REPO" --no-print-directory -s uninstall DESTDIR="$root" PREFIX=/usr/local
}

@test "make deb: dpkg-deb -c lists exactly the package's files; its hooks.d JSON names /usr/libexec" {
  requires cmd:dpkg-deb
  local out=$BATS_FILE_TMPDIR/debout deb x=$BATS_TEST_TMPDIR/x
  # lintian runs in make deb itself (make check); not again here
  run_cmd 0 make -C "$BRO_REPO" --no-print-directory -s deb OUT="$out" LINTIAN=no
  deb=$(echo "$out"/brothaman_*_"$(dpkg --print-architecture)".deb)
  [[ -f $deb ]] || fail "no package in $out: $(ls "$out")"
  run_cmd 0 dpkg-deb -f "$deb" Package Architecture
  assert_output "Package: brothaman
Architecture: $(dpkg --print-architecture)"
  run_cmd 0 dpkg-deb -f "$deb" Depends
  assert_output --regexp '^podman \(>= 4\.3\), systemd, libc6 \(>= 2\.[0-9]+\)$'
  # mode, owner, path (and link target) of everything but directories
  run_cmd 0 bash -c "dpkg-deb -c '$deb' | awk '\$1 !~ /^d/ {\$3 = \$4 = \$5 = \"\"; print}' | tr -s ' ' | LC_ALL=C sort -k3"
  assert_output "-rwxr-xr-x root/root ./usr/bin/bro-activate
lrwxrwxrwx root/root ./usr/bin/bro-activate-direct -> bro-activate
-rwxr-xr-x root/root ./usr/bin/bro-proxy
lrwxrwxrwx root/root ./usr/lib/systemd/system-generators/bro-generator -> ../../../bin/bro-activate
lrwxrwxrwx root/root ./usr/lib/systemd/user-generators/bro-generator -> ../../../bin/bro-activate
-rwxr-xr-x root/root ./usr/libexec/brothaman/bro-hook
-rw-r--r-- root/root ./usr/share/bash-completion/completions/bro-activate
lrwxrwxrwx root/root ./usr/share/bash-completion/completions/bro-activate-direct -> bro-activate
-rw-r--r-- root/root ./usr/share/bash-completion/completions/bro-proxy
-rw-r--r-- root/root ./usr/share/containers/oci/hooks.d/50-bro-activate-poststop.json
-rw-r--r-- root/root ./usr/share/containers/oci/hooks.d/50-bro-activate-precreate.json
-rw-r--r-- root/root ./usr/share/containers/oci/hooks.d/50-bro-activate-prestart.json
-rw-r--r-- root/root ./usr/share/doc/brothaman/README.md.gz
-rw-r--r-- root/root ./usr/share/doc/brothaman/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/brothaman/copyright
-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/bro-activate-direct.fish
-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/bro-activate.fish
-rw-r--r-- root/root ./usr/share/fish/vendor_completions.d/bro-proxy.fish
-rw-r--r-- root/root ./usr/share/lintian/overrides/brothaman
lrwxrwxrwx root/root ./usr/share/man/man1/bro-activate-direct.1.gz -> bro-activate.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/bro-activate.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/bro-hook.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/bro-proxy.1.gz
-rw-r--r-- root/root ./usr/share/man/man7/brothaman.7.gz
-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_bro-activate
-rw-r--r-- root/root ./usr/share/zsh/vendor-completions/_bro-proxy"
  mkdir -p "$x"
  run_cmd 0 dpkg-deb -x "$deb" "$x"
  for stage in precreate prestart poststop; do
    run_cmd 0 jq -r .hook.path "$x/usr/share/containers/oci/hooks.d/50-bro-activate-$stage.json"
    assert_output /usr/libexec/brothaman/bro-hook
  done
  run_cmd 0 find "$x" -perm /6000
  assert_output ""
  # the binaries: PIE, stripped, the Makefile's version stamp
  run_cmd 0 file -b "$x/usr/bin/bro-proxy"
  assert_output --partial "pie executable"
  assert_output --partial ", stripped"
  # the Makefile's version stamp, and the package version made from it
  run_cmd 0 "$x/usr/bin/bro-activate" --version
  assert_output --regexp '^bro-activate [0-9a-z]'
  local stamp=${lines[0]#bro-activate }
  run_cmd 0 "$BRO_REPO/packaging/deb/version.sh" "${stamp%% *}"
  assert_output "$(dpkg-deb -f "$deb" Version)"
}
