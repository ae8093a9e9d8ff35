#!/usr/bin/env bash
# rig-up.sh - bring a Debian 12 machine to the rig Brothaman-Go's end-to-end
# tests (test/bats) run on:
#
#   rootless Podman (Debian's 4.3) for RIG_USER, CROSS_USER and THIRD_USER
#   + Podman 5 (built from the Go module, pinned) for P5_USER, the second test
#     matrix: its own systemd --user manager runs quadlet units with Podman 5
#   + a wrapper OCI runtime, where the host needs one (see below)
#   + a systemd --user manager for RIG_USER and one for CROSS_USER (the lab's
#     reverse proxy runs there, test/bats/640-lab.bats)
#   + the quadlet generator (Podman v5's, built from the Go module, unless the
#     host's Podman package ships one)
#   + images localhost/bbox:latest (root, RIG_USER, CROSS_USER, P5_USER) and
#     localhost/postgres:15 (RIG_USER, P5_USER; Debian's postgresql-15 in a
#     debootstrap rootfs), localhost/redis:7 (RIG_USER) and
#     localhost/nginx:1.22 (CROSS_USER) from Debian's redis-server and nginx
#     in another (the lab's section-4 example)
#   + the test tools (bats with bats-assert/bats-support, psql, nc, ss,
#     systemd-socket-activate, systemd-socket-proxyd)
#
# Two kinds of host:
#   * PID 1 is systemd: the host's own user managers are used. Linger is
#     enabled for both users (that starts user@UID.service and creates
#     /run/user/UID); nothing is started by hand.
#   * PID 1 is something else (our CI sandboxes: cgroup v1 hybrid, no logind,
#     no journald, CAP_SYS_RESOURCE missing): the rig is built by hand, as in
#     test/rig/README.md: runtime dir, delegated cgroups, standalone journald,
#     a hand-started systemd --user.
#
# Idempotent: every step checks first and prints "ok" (nothing to do) or
# "did" (changed something). A running user manager is never restarted unless
# --restart-manager is given. Storage is never wiped unless --reset-storage.
#
# Usage: sudo test/rig/rig-up.sh [--no-postgres] [--reset-storage]
#                                [--restart-manager] [--flatten-cgroups] [--check]
#   --flatten-cgroups  pull processes pushed down by podman --cgroups=split back
#                      into the user's v1 cgroup (between test runs, not during)
#   --check            change nothing; fail at the first missing piece
set -euo pipefail

RIG_USER=${RIG_USER:-lingeruser}
RIG_UID=${RIG_UID:-1001}
CROSS_USER=${CROSS_USER:-crossuser}
CROSS_UID=${CROSS_UID:-1002}
# Podman 5's user: rootless, a user manager of its own, `podman` on its PATH
# (~/.local/bin, as Debian's ~/.profile has it) is Podman 5
P5_USER=${P5_USER:-p5user}
P5_UID=${P5_UID:-1003}
# a third account that is neither the lab's owner nor its proxy's: rootless
# Podman, no user manager (640-lab: refused at the web app, served by nginx)
THIRD_USER=${THIRD_USER:-thirduser}
THIRD_UID=${THIRD_UID:-1004}
PODMAN5_VERSION=${PODMAN5_VERSION:-v5.8.6}
PODMAN5_DIR=${PODMAN5_DIR:-/usr/local/lib/podman5}   # podman, rootlessport, quadlet
SUBID_COUNT=${SUBID_COUNT:-65536}
V1_CGROUP=${V1_CGROUP:-brotest}          # name of the delegated cgroup in each v1 controller
P5_V1_CGROUP=${P5_V1_CGROUP:-brotest5}   # the same for P5_USER
CROSS_V1_CGROUP=${CROSS_V1_CGROUP:-brotestx}   # and for CROSS_USER
QUADLET_MODULE_VERSION=${QUADLET_MODULE_VERSION:-v5.6.2}
QUADLET_BIN=${QUADLET_BIN:-/usr/local/bin/quadlet-v5}
RUNTIME_WRAPPER=/usr/local/bin/runc-sandbox
CACHE=${CACHE:-/var/cache/bro-sandbox}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PG_IMAGE=${PG_IMAGE:-localhost/postgres:15}
BBOX_IMAGE=${BBOX_IMAGE:-localhost/bbox:latest}
REDIS_IMAGE=${REDIS_IMAGE:-localhost/redis:7}
NGINX_IMAGE=${NGINX_IMAGE:-localhost/nginx:1.22}

WITH_POSTGRES=1
RESET_STORAGE=0
RESTART_MANAGER=0
FLATTEN_CGROUPS=0
CHECK_ONLY=0
for a in "$@"; do
  case "$a" in
    --no-postgres) WITH_POSTGRES=0 ;;
    --reset-storage) RESET_STORAGE=1 ;;
    --restart-manager) RESTART_MANAGER=1 ;;
    --flatten-cgroups) FLATTEN_CGROUPS=1 ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown option: $a" >&2; exit 2 ;;
  esac
done

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }

ok()   { printf '  ok   %s\n' "$*"; }
did()  { printf '  did  %s\n' "$*"; }
warn() { printf '  WARN %s\n' "$*" >&2; }
step() { printf '== %s\n' "$*"; }
die()  { printf 'FAIL %s\n' "$*" >&2; exit 1; }

T0=$SECONDS
# Never let a step wait for a terminal: CI has no stdin.
exec </dev/null
export DEBIAN_FRONTEND=noninteractive

# A host whose PID 1 is systemd has logind and user@.service; use them. The
# directory alone proves nothing: on a rig machine this script creates it.
HOST_SYSTEMD=0
if [[ -d /run/systemd/system && $(ps -p 1 -o comm= 2>/dev/null) == systemd ]]; then
  HOST_SYSTEMD=1
fi

# The wrapper runtime is needed where runc cannot set rlimits (CAP_SYS_RESOURCE
# missing from the bounding set, bit 24) or the cgroups are not a pure v2 tree
# that systemd delegates. On a normal cgroup v2 host Podman's defaults work.
capbnd=$(awk '/^CapBnd:/{print $2}' /proc/self/status)
NEED_WRAPPER=0
if (( ! ((16#$capbnd >> 24) & 1) )) || [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
  NEED_WRAPPER=1
fi

home_of() { local h; h=$(getent passwd "$1" | cut -d: -f6 || true); echo "${h:-/home/$1}"; }

# as_user USER CMD...: CMD as USER with a clean, complete environment
# shellcheck source=test/rig/as-user.sh
source "$(dirname "${BASH_SOURCE[0]}")/as-user.sh"
as_rig() { as_user "$RIG_USER" "$@"; }

# manager_pid [UID], manager_ok [USER]: RIG_USER's unless named
manager_pid() { { pgrep -u "${1:-$RIG_UID}" -x systemd -a 2>/dev/null || true; } | awk '/--user/{print $1; exit}'; }
manager_ok() { # no pipe here: with pipefail a non-zero is-system-running ("degraded") would fail it
  local s; s=$(as_user "${1:-$RIG_USER}" systemctl --user is-system-running 2>/dev/null || true)
  [[ $s == running || $s == degraded || $s == starting || $s == initializing ]]
}

# detach LOGFILE CMD...: run CMD as a daemon in its own session, stdin from
# /dev/null, output to LOGFILE, and no other inherited descriptors (a daemon
# holding the caller's pipe would keep `rig-up.sh | tee` from ending).
detach() {
  local log=$1; shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'for f in /proc/$$/fd/*; do n=${f##*/}; (( n > 2 )) && eval "exec $n>&-"; done 2>/dev/null; exec "$@"' \
    bash "$@" </dev/null >>"$log" 2>&1 &
}

# write_if_changed PATH MODE OWNER  (content on stdin)
write_if_changed() {
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"; ok "$path unchanged"; return 0
  fi
  if (( CHECK_ONLY )); then rm -f "$tmp"; die "$path missing or different"; fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"
  rm -f "$tmp"; did "wrote $path"
}

if (( HOST_SYSTEMD )); then
  ok "host: PID 1 is systemd; using the host's user managers (linger)"
else
  ok "host: PID 1 is $(ps -p 1 -o comm= 2>/dev/null || echo '?'); building the rig by hand"
fi
(( NEED_WRAPPER )) && ok "runc needs the wrapper here (CapBnd $capbnd, /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup))"

# ---------------------------------------------------------------- 1. packages
step "packages"
# podman stack; rig tools (debootstrap, busybox-static, python3 for the
# wrapper); test tools: bats + bats-assert/bats-support (loaded by
# test/bats/helpers.bash), psql, nc, ss (iproute2), and systemd for
# systemd-socket-activate, /lib/systemd/systemd-socket-proxyd, systemd-analyze;
# bash-completion, zsh and fish: the completion scripts are run by each shell;
# the package (make deb): dpkg-dev (dpkg-shlibdeps), go-md2man (man pages), lintian;
# make bench: pasta (passt, Podman 5's rootless port forwarder) and pgbench
# (postgresql-client-15); Podman 5's build (cgo): libseccomp-dev, libsystemd-dev,
# pkg-config.
PKGS=(podman crun runc uidmap slirp4netns catatonit busybox-static
      dbus-user-session libcap2-bin debootstrap python3 util-linux procps
      systemd bats bats-assert bats-support
      postgresql-client-15 passt netcat-openbsd iproute2 curl jq
      dnsmasq-base bind9-dnsutils bash-completion zsh fish
      dpkg-dev go-md2man lintian libseccomp-dev libsystemd-dev pkg-config)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  (( CHECK_ONLY )) && die "missing packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  did "apt-get install ${missing[*]}"
else
  ok "all packages present: ${PKGS[*]}"
fi

# ------------------------------------------------------ 2. wrapper OCI runtime
# crun 1.8 refuses cgroup v1 hybrid; runc fails on setrlimit (no CAP_SYS_RESOURCE)
# and on cgroup writes. The wrapper deletes process.rlimits and linux.cgroupsPath
# from the bundle's config.json, then execs the real runc. It is installed on
# every host (tests pass it to rootful podman with --runtime), but made the
# users' default only where NEED_WRAPPER says so.
step "wrapper runtime $RUNTIME_WRAPPER"
write_if_changed "$RUNTIME_WRAPPER" 0755 root:root <<'EOF'
#!/bin/sh
# strip rlimits from the bundle config (sandbox lacks CAP_SYS_RESOURCE)
prev=""
for a in "$@"; do
  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then b="$a"; fi
  case "$a" in --bundle=*) b="${a#--bundle=}";; esac
  prev="$a"
done
if [ -n "$b" ] && [ -f "$b/config.json" ]; then
  python3 - "$b/config.json" <<'PY'
import json,sys
p=sys.argv[1]; d=json.load(open(p)); d.get("process",{}).pop("rlimits",None); d.get("linux",{}).pop("cgroupsPath",None); json.dump(d,open(p,"w"))
PY
fi
exec ${REAL_RUNTIME:-/usr/bin/runc} "$@"
EOF

# ------------------------------------------------------------------- 3. users
step "users"
ensure_user() { # name uid
  if getent passwd "$1" >/dev/null; then
    ok "user $1 exists (uid $(id -u "$1"))"
    [[ $(id -u "$1") == "$2" ]] || warn "user $1 has uid $(id -u "$1"), expected $2"
  else
    (( CHECK_ONLY )) && die "user $1 missing"
    useradd -m -u "$2" -s /bin/bash "$1"; did "useradd $1 (uid $2)"
  fi
}
ensure_user "$RIG_USER" "$RIG_UID"
ensure_user "$CROSS_USER" "$CROSS_UID"
ensure_user "$P5_USER" "$P5_UID"
ensure_user "$THIRD_USER" "$THIRD_UID"

# Subordinate ids: Debian's useradd usually adds them; a user created another
# way may have none, and rootless podman then maps only one id.
ensure_subids() { # name
  local f start
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if grep -q "^$1:" "$f"; then ok "$f has $(grep "^$1:" "$f" | head -1)"; continue; fi
    (( CHECK_ONLY )) && die "$f lacks $1"
    # next free range after every range already in the file
    start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$f")
    echo "$1:$start:$SUBID_COUNT" >>"$f"; did "$f += $1:$start:$SUBID_COUNT"
  done
}
ensure_subids "$RIG_USER"
ensure_subids "$CROSS_USER"
ensure_subids "$P5_USER"
ensure_subids "$THIRD_USER"

# /run/user/UID: logind creates it (and keeps it while the user lingers);
# without logind it is made by hand. podman and systemctl --user need it.
ensure_rundir() { # name uid
  local d=/run/user/$2 m
  if (( HOST_SYSTEMD )); then
    if [[ -f /var/lib/systemd/linger/$1 ]]; then ok "linger enabled for $1"
    else
      (( CHECK_ONLY )) && die "linger not enabled for $1"
      loginctl enable-linger "$1"; did "loginctl enable-linger $1"
    fi
    for _ in $(seq 100); do
      [[ -d $d ]] && systemctl is-active -q "user@$2.service" && break
      sleep 0.2
    done
    [[ -d $d ]] || die "$d did not appear after enable-linger $1"
    systemctl is-active -q "user@$2.service" || die "user@$2.service is $(systemctl is-active "user@$2.service")"
    ok "$d exists, user@$2.service active"
  elif [[ -d $d && $(stat -c %U "$d") == "$1" ]]; then
    # No process of the user runs, yet its runtime dir holds state: a machine
    # restored from a snapshot, or a rig whose processes were all ended. Podman
    # would trust its "alive" file and try to join the dead pause process
    # ("invalid internal status"), systemctl a dead manager's socket. Empty it,
    # as a reboot (tmpfs) or logind after the last session would.
    if ! pgrep -u "$2" >/dev/null && [[ -n $(ls -A "$d") ]]; then
      (( CHECK_ONLY )) && die "$d holds state of processes that are gone"
      # a file system still mounted under it is not ours to empty
      m=$(awk -v d="$d/" 'index($5, d) == 1 { print $5; exit }' /proc/self/mountinfo)
      [[ -z $m ]] || die "$d holds state of processes that are gone, but $m is mounted under it: unmount it and run again"
      find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
      did "emptied $d: no process of $1 runs, its contents were stale"
    else ok "$d exists"
    fi
  else
    (( CHECK_ONLY )) && die "$d missing"
    install -d -o "$1" -g "$1" -m 0700 "$d"; did "created $d (0700)"
  fi
}
ensure_rundir "$RIG_USER" "$RIG_UID"
ensure_rundir "$CROSS_USER" "$CROSS_UID"
ensure_rundir "$P5_USER" "$P5_UID"
ensure_rundir "$THIRD_USER" "$THIRD_UID"

# --------------------------------------------------------------- 4. /dev/net/tun
# slirp4netns (the default rootless network) opens it as the user.
step "/dev/net/tun (slirp4netns needs it rootless)"
if [[ ! -c /dev/net/tun ]]; then
  (( CHECK_ONLY )) && die "/dev/net/tun missing"
  mkdir -p /dev/net; mknod /dev/net/tun c 10 200; did "mknod /dev/net/tun"
fi
if [[ $(stat -c %a /dev/net/tun) != 666 ]]; then
  (( CHECK_ONLY )) && die "/dev/net/tun not 0666"
  chmod 666 /dev/net/tun; did "chmod 666 /dev/net/tun"
else ok "/dev/net/tun is 0666"; fi

# ------------------------------------------------------- 5. podman user config
podman_config() { # name [extra [engine] lines]
  local user=$1 extra=${2:-} home cfg graphroot units engine=
  home=$(home_of "$user"); cfg=$home/.config/containers
  step "podman config for $user"
  install -d -o "$user" -g "$user" -m 0700 "$home/.config"
  install -d -o "$user" -g "$user" -m 0755 "$cfg" "$cfg/systemd"
  # Runtime: the wrapper, and cgroupfs (the systemd cgroup manager needs a
  # system D-Bus and a system manager, which a rig machine lacks).
  (( NEED_WRAPPER )) && engine=$'cgroup_manager = "cgroupfs"\nruntime = "runcsb"\n'
  engine+=$extra
  if [[ -n $engine ]]; then
    { printf '[engine]\n%s' "$engine"
      if (( NEED_WRAPPER )); then printf '[engine.runtimes]\nruncsb = ["%s"]\n' "$RUNTIME_WRAPPER"; fi
    } | write_if_changed "$cfg/containers.conf" 0644 "$user:$user"
  else
    ok "$user keeps Podman's default runtime and cgroup manager"
  fi
  # Storage: prefer native rootless overlay (kernel >= 5.13 on ext4 supports it);
  # without a storage.conf podman 4.3 silently falls back to vfs, which copies the
  # whole image for every container start. Never switch an existing vfs store
  # unless --reset-storage (it would hide the user's images/containers).
  graphroot=$home/.local/share/containers/storage
  if [[ -f "$cfg/storage.conf" ]]; then
    ok "$cfg/storage.conf present ($(grep -E '^driver' "$cfg/storage.conf" || echo 'no driver line'))"
  elif [[ -d $graphroot/vfs && $RESET_STORAGE -eq 0 ]]; then
    warn "existing vfs store in $graphroot kept (pass --reset-storage to switch to overlay; wipes $user's images and containers)"
  else
    (( CHECK_ONLY )) && die "$cfg/storage.conf missing"
    if (( RESET_STORAGE )) && [[ -d $graphroot ]]; then
      # stop quadlet units first, or Restart=always brings containers back mid-reset
      units=$(find "/run/user/$(id -u "$user")/systemd/generator" -maxdepth 1 -name '*.service' -printf '%f\n' 2>/dev/null || true)
      if [[ $user == "$RIG_USER" && -n $units ]] && manager_ok; then
        # shellcheck disable=SC2086 # one word per unit
        as_user "$user" systemctl --user stop $units || true
      fi
      as_user "$user" podman system reset -f >/dev/null 2>&1 || true
      rm -rf "$graphroot" 2>/dev/null || as_user "$user" podman unshare rm -rf "$graphroot"
      did "podman system reset for $user"
    fi
    write_if_changed "$cfg/storage.conf" 0644 "$user:$user" <<'EOF'
[storage]
driver = "overlay"
EOF
  fi
}
podman_config "$RIG_USER"
podman_config "$CROSS_USER"
podman_config "$THIRD_USER"
# Podman 5 finds conmon, pasta and catatonit where Debian put them, and
# rootlessport (a Podman 5 one) in its own directory
podman_config "$P5_USER" "helper_binaries_dir = [\"$PODMAN5_DIR\", \"/usr/libexec/podman\", \"/usr/lib/podman\", \"/usr/bin\"]
"

# ------------------------------------------------------------ 6. quadlet build
# Debian 12's Podman 4.3 has no quadlet. The v5 generator is built from the Go
# module (the module proxy is reachable where Debian's mirror is) and linked as
# the user generator. A host whose Podman package ships its own generator
# keeps it.
step "quadlet generator"
GEN=/usr/lib/systemd/user-generators/podman-user-generator
if [[ -e $GEN && $(readlink -f "$GEN") != "$(readlink -f "$QUADLET_BIN")" ]] && dpkg -S "$GEN" >/dev/null 2>&1; then
  ok "$GEN comes with the host's Podman package ($(dpkg -S "$GEN" | cut -d: -f1)); left alone"
else
  if [[ -x $QUADLET_BIN && -f $CACHE/quadlet.version && $(cat "$CACHE/quadlet.version") == "$QUADLET_MODULE_VERSION" ]] \
     || { [[ -x $QUADLET_BIN ]] && "$QUADLET_BIN" -version 2>/dev/null | grep -q "${QUADLET_MODULE_VERSION#v}"; }; then
    ok "$QUADLET_BIN is $("$QUADLET_BIN" -version 2>/dev/null | head -1)"
  else
    (( CHECK_ONLY )) && die "$QUADLET_BIN missing"
    export PATH=$PATH:/usr/local/go/bin
    command -v go >/dev/null || die "Go toolchain not found (needed to build quadlet; expected in /usr/local/go/bin)"
    # go needs a HOME (or GOCACHE/GOMODCACHE); a CI job may have none
    export HOME=${HOME:-/root}
    qb=$CACHE/qbuild; rm -rf "$qb"; mkdir -p "$qb"
    t0=$SECONDS
    ( cd "$qb"
      go mod init qbuild >/dev/null 2>&1
      printf '//go:build tools\npackage tools\nimport _ "github.com/containers/podman/v5/cmd/quadlet"\n' >tools.go
      go get "github.com/containers/podman/v5/cmd/quadlet@$QUADLET_MODULE_VERSION" >"$CACHE/quadlet-build.log" 2>&1
      CGO_ENABLED=0 go build -o "$QUADLET_BIN" github.com/containers/podman/v5/cmd/quadlet >>"$CACHE/quadlet-build.log" 2>&1 ) \
      || die "quadlet build failed, see $CACHE/quadlet-build.log"
    echo "$QUADLET_MODULE_VERSION" >"$CACHE/quadlet.version"
    did "built $QUADLET_BIN in $(( SECONDS - t0 ))s"
  fi
  if [[ $(readlink "$GEN" 2>/dev/null) == "$QUADLET_BIN" ]]; then ok "$GEN -> $QUADLET_BIN"
  else
    (( CHECK_ONLY )) && die "$GEN not linked"
    mkdir -p "$(dirname "$GEN")"; ln -sfn "$QUADLET_BIN" "$GEN"; did "ln -s $QUADLET_BIN $GEN"
  fi
fi

# -------------------------------------------------------- 6b. Podman 5 build
# The second test matrix: Podman 5 from its Go module, pinned, the way the
# quadlet generator is built (cgo here: seccomp and the systemd journal).
# podman, its rootlessport and its quadlet go to PODMAN5_DIR; P5_USER gets
# ~/.local/bin/podman -> PODMAN5_DIR/podman. conmon, pasta, netavark and
# catatonit are Debian's. About 90 s on 2 cores with a warm module cache.
step "Podman 5 ($PODMAN5_VERSION) in $PODMAN5_DIR"
p5_tags='containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp systemd'
if [[ -x $PODMAN5_DIR/podman && -x $PODMAN5_DIR/rootlessport && -x $PODMAN5_DIR/quadlet &&
      -f $CACHE/podman5.version && $(cat "$CACHE/podman5.version") == "$PODMAN5_VERSION" ]] &&
   "$PODMAN5_DIR/podman" --version 2>/dev/null | grep -qF " ${PODMAN5_VERSION#v}"; then
  ok "$("$PODMAN5_DIR/podman" --version)"
else
  (( CHECK_ONLY )) && die "Podman 5 missing in $PODMAN5_DIR"
  export PATH=$PATH:/usr/local/go/bin HOME=${HOME:-/root}
  command -v go >/dev/null || die "Go toolchain not found (needed to build Podman 5; expected in /usr/local/go/bin)"
  pb=$CACHE/p5build; rm -rf "$pb"; mkdir -p "$pb/out"
  t0=$SECONDS
  m=github.com/containers/podman/v5/cmd
  ( cd "$pb"
    go mod init p5build >/dev/null 2>&1
    go get "$m/podman@$PODMAN5_VERSION" "$m/rootlessport@$PODMAN5_VERSION" "$m/quadlet@$PODMAN5_VERSION" >"$CACHE/podman5-build.log" 2>&1
    CGO_ENABLED=1 go build -trimpath -tags "$p5_tags" -o out/ "$m/podman" "$m/rootlessport" "$m/quadlet" >>"$CACHE/podman5-build.log" 2>&1 ) \
    || die "Podman 5 build failed, see $CACHE/podman5-build.log"
  install -d "$PODMAN5_DIR"
  for b in podman rootlessport quadlet; do install -m 0755 "$pb/out/$b" "$PODMAN5_DIR/.$b.new" && mv -f "$PODMAN5_DIR/.$b.new" "$PODMAN5_DIR/$b"; done
  rm -rf "$pb"
  echo "$PODMAN5_VERSION" >"$CACHE/podman5.version"
  did "built $("$PODMAN5_DIR/podman" --version) in $(( SECONDS - t0 ))s"
fi
p5_bin=$(home_of "$P5_USER")/.local/bin
if [[ $(readlink "$p5_bin/podman" 2>/dev/null) == "$PODMAN5_DIR/podman" ]]; then ok "$p5_bin/podman -> $PODMAN5_DIR/podman"
else
  (( CHECK_ONLY )) && die "$p5_bin/podman not linked"
  install -d -o "$P5_USER" -g "$P5_USER" -m 0700 "$(dirname "$p5_bin")"
  install -d -o "$P5_USER" -g "$P5_USER" -m 0755 "$p5_bin"
  ln -sfn "$PODMAN5_DIR/podman" "$p5_bin/podman"; did "ln -s $PODMAN5_DIR/podman $p5_bin/podman"
fi

# ------------------------------------------------------------------- 7. images
# (before the user manager starts: quadlet units enabled for default.target
# start at once and would try to pull a missing localhost/ image from a
# registry, which is https://localhost/v2/ here, and loop with Restart=)
step "image $BBOX_IMAGE (busybox-static)"
mkdir -p "$CACHE"
bbox_tar=$CACHE/bbox-rootfs.tar
if [[ ! -s $bbox_tar ]]; then
  (( CHECK_ONLY )) && die "$bbox_tar missing"
  r=$(mktemp -d); mkdir -p "$r/bin" "$r/tmp" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  tar -C "$r" --numeric-owner -cf "$bbox_tar" .; rm -rf "$r"
  did "built $bbox_tar"
fi
# the users import from here
chmod 0755 "$CACHE"; chmod 0644 "$bbox_tar"
if podman image exists "$BBOX_IMAGE" 2>/dev/null; then ok "root has $BBOX_IMAGE"
else
  (( CHECK_ONLY )) && die "root lacks $BBOX_IMAGE"
  podman import -q "$bbox_tar" "$BBOX_IMAGE" >/dev/null; did "root: podman import $BBOX_IMAGE"
fi
for u in "$RIG_USER" "$CROSS_USER" "$P5_USER" "$THIRD_USER"; do
  if as_user "$u" podman image exists "$BBOX_IMAGE" 2>/dev/null; then ok "$u has $BBOX_IMAGE"
  else
    (( CHECK_ONLY )) && die "$u lacks $BBOX_IMAGE"
    as_user "$u" podman import -q "$bbox_tar" "$BBOX_IMAGE" >/dev/null; did "$u: podman import $BBOX_IMAGE"
  fi
done

if (( WITH_POSTGRES )); then
  step "image $PG_IMAGE for $RIG_USER and $P5_USER (debootstrap bookworm minbase + postgresql-15)"
  # The entrypoint: initdb once into $PGDATA (a volume), then exec postgres on
  # 127.0.0.1:5432. Env like the official image: POSTGRES_PASSWORD,
  # POSTGRES_USER, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, PGDATA,
  # POSTGRES_LISTEN_ADDRESSES (default 127.0.0.1). Kept byte-identical to
  # ../shared/tools/sandbox-up.sh's, so both scripts agree on the image label.
  read -r -d '' ENTRYPOINT <<'EOS' || true
#!/bin/sh
set -eu
PGBIN=/usr/lib/postgresql/15/bin
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
case "${1:-postgres}" in
  postgres|-*) ;;
  *) exec "$@" ;;               # any other command runs as given (like the official image)
esac
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  [ "$(stat -c %U "$PGDATA")" = postgres ] || chown -R postgres:postgres "$PGDATA"
  chown postgres:postgres /run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "pg-entrypoint: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2; exit 1
  fi
  pw=$(mktemp); printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pw"
  "$PGBIN/initdb" -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$pw" \
      --auth-local=trust --auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
  echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
  if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
    "$PGBIN/postgres" --single -D "$PGDATA" postgres <<SQL >/dev/null
CREATE DATABASE "$POSTGRES_DB";
SQL
  fi
  echo "pg-entrypoint: initialized $PGDATA"
fi
if [ "${1:-}" = postgres ]; then shift; fi
exec "$PGBIN/postgres" -D "$PGDATA" -c "listen_addresses=${POSTGRES_LISTEN_ADDRESSES:-127.0.0.1}" \
     -c unix_socket_directories=/run/postgresql "$@"
EOS
  ep_sha=$(printf '%s' "$ENTRYPOINT" | sha256sum | cut -c1-16)
  for u in "$RIG_USER" "$P5_USER"; do
    have=$(as_user "$u" podman image inspect -f '{{index .Labels "bro.rig.entrypoint"}}' "$PG_IMAGE" 2>/dev/null || true)
    if [[ $have == "$ep_sha" ]]; then
      ok "$u has $PG_IMAGE (entrypoint $ep_sha)"
    elif (( CHECK_ONLY )); then die "$PG_IMAGE missing or stale for $u"
    else
      # The rootfs tarball is cached: debootstrap (~40 s) runs once per machine.
      pg_tar=$CACHE/pg-rootfs.tar
      if [[ ! -s $pg_tar ]]; then
        r=$CACHE/pg-rootfs; rm -rf "$r"
        t0=$SECONDS
        debootstrap --variant=minbase --include=postgresql-15 bookworm "$r" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
          || die "debootstrap failed, see $CACHE/debootstrap.log"
        did "debootstrap in $(( SECONDS - t0 ))s"
        # slim: the package's default cluster, docs, translations, apt caches and
        # the LLVM JIT (postgres runs without it: jit is simply unavailable)
        rm -rf "$r"/var/lib/postgresql/15/main "$r"/etc/postgresql/15/main "$r"/var/cache/apt/* \
               "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
               "$r"/usr/share/locale/* "$r"/usr/share/i18n "$r"/usr/lib/postgresql/15/lib/llvmjit* \
               "$r"/usr/lib/postgresql/15/lib/bitcode "$r"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* \
               "$r"/usr/lib/x86_64-linux-gnu/libz3.so*
        # write then rename: an interrupted run must not leave a truncated cache
        tar -C "$r" --numeric-owner -cf "$pg_tar.tmp" . && mv "$pg_tar.tmp" "$pg_tar" && rm -rf "$r"
        chmod 0644 "$pg_tar"; did "rootfs tarball $pg_tar ($(du -h "$pg_tar" | cut -f1))"
      fi
      ep=$(mktemp -d); chmod 755 "$ep"
      mkdir -p "$ep/usr/local/bin"; printf '%s\n' "$ENTRYPOINT" >"$ep/usr/local/bin/pg-entrypoint"
      chmod 0755 "$ep/usr/local/bin/pg-entrypoint"
      cp "$pg_tar" "$ep/full.tar"; tar -C "$ep" --owner=0 --group=0 -rf "$ep/full.tar" ./usr/local/bin/pg-entrypoint
      chmod 0644 "$ep/full.tar"
      as_user "$u" podman import -q \
        --change 'ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]' --change 'CMD ["postgres"]' \
        --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'STOPSIGNAL SIGINT' \
        --change 'EXPOSE 5432' --change "LABEL bro.rig.entrypoint=$ep_sha" \
        "$ep/full.tar" "$PG_IMAGE" >/dev/null
      rm -rf "$ep"
      as_user "$u" podman image prune -f >/dev/null 2>&1 || true   # the replaced, now untagged image
      did "$u: podman import $PG_IMAGE (entrypoint $ep_sha)"
    fi
  done
fi

# The lab's section-4 example (test/bats/640-lab.bats): Redis for RIG_USER,
# nginx for CROSS_USER, Debian's packages in one debootstrap minbase rootfs
# (cached like the PostgreSQL one; debootstrap's policy-rc.d keeps their
# services from starting while it installs them). Two images of that rootfs
# with their own entrypoints; a label carries the hash of what makes them,
# so a change re-imports them.
step "images $REDIS_IMAGE ($RIG_USER), $NGINX_IMAGE ($CROSS_USER): debootstrap bookworm minbase + redis-server, nginx"
REDIS_CHANGES=(--change 'CMD ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]'
               --change 'USER redis' --change 'EXPOSE 6379')
NGINX_CHANGES=(--change 'CMD ["/usr/sbin/nginx", "-g", "daemon off;"]' --change 'STOPSIGNAL SIGQUIT' --change 'EXPOSE 80')
lab_image() { # user image changes...
  local u=$1 img=$2 sha have lab_tar=$CACHE/lab-rootfs.tar r t0; shift 2
  sha=$(printf '%s\n' "$@" | sha256sum | cut -c1-16)
  have=$(as_user "$u" podman image inspect -f '{{index .Labels "bro.rig.lab"}}' "$img" 2>/dev/null || true)
  if [[ $have == "$sha" ]]; then ok "$u has $img ($sha)"; return 0; fi
  (( CHECK_ONLY )) && die "$img missing or stale for $u"
  if [[ ! -s $lab_tar ]]; then
    r=$CACHE/lab-rootfs; rm -rf "$r"
    t0=$SECONDS
    debootstrap --variant=minbase --include=redis-server,nginx bookworm "$r" "$DEBIAN_MIRROR" >"$CACHE/lab-debootstrap.log" 2>&1 \
      || die "debootstrap failed, see $CACHE/lab-debootstrap.log"
    did "debootstrap in $(( SECONDS - t0 ))s"
    rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
           "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/i18n
    tar -C "$r" --numeric-owner -cf "$lab_tar.tmp" . && mv "$lab_tar.tmp" "$lab_tar" && rm -rf "$r"
    chmod 0644 "$lab_tar"; did "rootfs tarball $lab_tar ($(du -h "$lab_tar" | cut -f1))"
  fi
  as_user "$u" podman import -q "$@" --change "LABEL bro.rig.lab=$sha" "$lab_tar" "$img" >/dev/null
  as_user "$u" podman image prune -f >/dev/null 2>&1 || true   # a replaced, now untagged image
  did "$u: podman import $img ($sha)"
}
lab_image "$RIG_USER" "$REDIS_IMAGE" "${REDIS_CHANGES[@]}"
lab_image "$CROSS_USER" "$NGINX_IMAGE" "${NGINX_CHANGES[@]}"

# P5_USER's manager, its units and the quadlet generator it runs find Podman
# 5: PODMAN is the binary quadlet writes into ExecStart=, PATH what
# bro-activate's `podman info` runs. The manager reads environment.d when it
# starts (a host's user@.service as well as the rig's hand-started one).
p5_home=$(home_of "$P5_USER")
install -d -o "$P5_USER" -g "$P5_USER" -m 0755 "$p5_home/.config/environment.d"
write_if_changed "$p5_home/.config/environment.d/50-podman5.conf" 0644 "$P5_USER:$P5_USER" <<EOF
PATH=$p5_home/.local/bin:/usr/local/bin:/usr/bin:/bin
PODMAN=$PODMAN5_DIR/podman
EOF

if (( HOST_SYSTEMD )); then
  for u in "$RIG_USER" "$CROSS_USER" "$P5_USER"; do
    step "systemd --user manager for $u: the host's"
    # linger started user@UID.service (step 3); the journal is the host's.
    manager_ok "$u" || die "the user manager of $u does not answer: $(as_user "$u" systemctl --user is-system-running 2>&1 || true)"
    ok "user manager state $(as_user "$u" systemctl --user is-system-running 2>/dev/null || true)"
  done
  # linger started P5_USER's manager before environment.d was written, and
  # a manager (and the generators it runs) reads it only when it starts
  p5_env=$(as_user "$P5_USER" systemctl --user show-environment 2>/dev/null || true)
  if [[ $p5_env != *"PODMAN=$PODMAN5_DIR/podman"* ]]; then
    (( CHECK_ONLY )) && die "the user manager of $P5_USER lacks PODMAN=$PODMAN5_DIR/podman"
    systemctl restart "user@$P5_UID.service"
    for _ in $(seq 100); do manager_ok "$P5_USER" && break; sleep 0.2; done
    manager_ok "$P5_USER" || die "the user manager of $P5_USER did not come back after a restart"
    did "restarted user@$P5_UID.service (it reads environment.d when it starts)"
  fi
  (( FLATTEN_CGROUPS )) && ok "--flatten-cgroups: nothing to flatten on a systemd host"
else
  # ------------------------------------------------------------- 8. journald
  # No systemd PID 1 means no journald: unit output sent to the journal would be
  # dropped. systemd-journald runs fine standalone (it binds its own sockets).
  # /run is on the ext4 root here, and journald refuses to delete the runtime
  # journal on a disk file system after a flush, so /run/log gets a tmpfs.
  step "systemd-journald (standalone)"
  journald_ok() { pgrep -x systemd-journal >/dev/null && [[ -S /run/systemd/journal/stdout ]]; }
  if journald_ok; then ok "journald running (pid $(pgrep -x systemd-journal | head -1))"
  else
    (( CHECK_ONLY )) && die "journald not running"
    mountpoint -q /run/log || { mkdir -p /run/log; rm -rf /run/log/journal; mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run/log; did "tmpfs on /run/log"; }
    mkdir -p /var/log/journal; systemd-tmpfiles --create --prefix /var/log/journal >/dev/null 2>&1 || true
    rm -f /run/systemd/journal/flushed /run/systemd/journal/io.systemd.journal
    detach /var/log/bro-sandbox-journald.log /lib/systemd/systemd-journald
    for _ in $(seq 50); do journalctl --flush >/dev/null 2>&1 && break; sleep 0.1; done
    journald_ok || die "journald did not start; see /var/log/bro-sandbox-journald.log"
    did "started systemd-journald (pid $(pgrep -x systemd-journal | head -1)), persistent, per-user files"
  fi

  # ------------------------------------------------------- 9. systemd --user manager
  V1_CTRLS=()
  for d in /sys/fs/cgroup/*; do
    [[ -d $d ]] || continue
    name=${d##*/}
    case "$name" in unified|systemd) continue ;; esac
    [[ -f $d/cgroup.procs && -f $d/tasks ]] && V1_CTRLS+=("$name")
  done

  # start_manager USER UID V1_CGROUP: USER's systemd --user, started by hand
  # in cgroups of its own (V1_CGROUP in each v1 controller), unless it runs.
  start_manager() {
    local user=$1 uid=$2 v1=$3 h u c g pid log home out procs=()
    step "systemd --user manager for $user (uid $uid), started by hand"
    if (( FLATTEN_CGROUPS )); then
      # podman --cgroups=split moves every process of its v1 cgroup into a new
      # "runtime" child on each start (see README.md); pull them back up.
      out=$(V1_CGROUP=$v1 bash "$(dirname "$0")/flatten-cgroups.sh")
      if [[ -n $out ]]; then did "$out"; else ok "no $v1/runtime cgroups to flatten"; fi
    fi

    if [[ -n $(manager_pid "$uid") && $RESTART_MANAGER -eq 0 ]] && manager_ok "$user"; then
      ok "user manager running (pid $(manager_pid "$uid")); state $(as_user "$user" systemctl --user is-system-running 2>/dev/null || true)"
      return 0
    fi
    (( CHECK_ONLY )) && die "user manager of $user not running"
    if [[ -n $(manager_pid "$uid") ]]; then
      pid=$(manager_pid "$uid"); kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      did "stopped old user manager pid $pid"
    fi
    # systemctl/podman/sd_booted() look for /run/systemd/system
    mkdir -p /run/systemd/system
    install -d -o "$user" -g "$user" -m 0700 "/run/user/$uid"
    # delegate the user@UID.service subtree in both systemd-managed hierarchies
    # (what the system manager's Delegate=yes would do)
    for h in unified systemd; do
      u=/sys/fs/cgroup/$h/user.slice/user-$uid.slice/user@$uid.service
      [[ -d /sys/fs/cgroup/$h ]] || continue
      mkdir -p "$u"; chown -R "$user:$user" "$u"; procs+=("$u/cgroup.procs")
    done
    # and give the user one cgroup of its own in each v1 controller (podman and
    # systemd --user write there; the job's own memory cgroup is not theirs).
    # cpuset: no process can join a cpuset cgroup with empty cpus/mems.
    for c in "${V1_CTRLS[@]}"; do
      g=/sys/fs/cgroup/$c/$v1
      mkdir -p "$g"
      if [[ $c == cpuset ]]; then
        [[ -s $g/cpuset.cpus ]] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$g/cpuset.cpus"
        [[ -s $g/cpuset.mems ]] || cat /sys/fs/cgroup/cpuset/cpuset.mems >"$g/cpuset.mems"
      fi
      chown -R "$user:$user" "$g"; procs+=("$g/cgroup.procs")
    done
    log=/var/log/bro-sandbox-user@$uid.log
    home=$(home_of "$user")
    # A detached shell moves itself into those cgroups, then becomes the
    # manager. env -i: otherwise the manager, and every unit it starts,
    # inherits root's whole environment.
    # shellcheck disable=SC2016 # $$ and $f are for the inner shell
    detach "$log" bash -c '
      for f in "$@"; do echo $$ >"$f"; done
      exec runuser -u '"$user"' -- env -i HOME='"$home"' USER='"$user"' LOGNAME='"$user"' \
        SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
        XDG_RUNTIME_DIR=/run/user/'"$uid"' /lib/systemd/systemd --user' bash "${procs[@]}"
    for _ in $(seq 100); do manager_ok "$user" && break; sleep 0.2; done
    manager_ok "$user" || die "user manager of $user did not come up; see $log"
    did "started systemd --user (pid $(manager_pid "$uid")), log $log"
  }
  start_manager "$RIG_USER" "$RIG_UID" "$V1_CGROUP"
  start_manager "$P5_USER" "$P5_UID" "$P5_V1_CGROUP"
  start_manager "$CROSS_USER" "$CROSS_UID" "$CROSS_V1_CGROUP"
fi
if (( ! CHECK_ONLY )); then
  for u in "$RIG_USER" "$CROSS_USER" "$P5_USER"; do
    as_user "$u" systemctl --user daemon-reload; ok "daemon-reload of $u (runs the generators)"
  done
fi

# -------------------------------------------------------------------- 10. check
step "smoke test"
for u in "$RIG_USER" "$CROSS_USER" "$P5_USER" "$THIRD_USER"; do
  smoke() { as_user "$u" podman run --rm --network none "$BBOX_IMAGE" /bin/sh -c 'echo rootless-ok' 2>&1; }
  if out=$(smoke) && [[ $out == *rootless-ok* ]]; then
    ok "rootless podman run ($u)"
  elif [[ $out == *"podman system migrate"* ]] && as_user "$u" podman system migrate >/dev/null 2>&1 &&
    out=$(smoke) && [[ $out == *rootless-ok* ]]; then
    # a machine that ran before: the rootless pause process is gone (a
    # reboot, or everything of the user's killed) and podman says so
    did "podman system migrate ($u): its pause process was gone"
  else die "rootless podman run as $u failed: $out"; fi
done
if out=$(podman run --rm --runtime "$RUNTIME_WRAPPER" --network none "$BBOX_IMAGE" /bin/sh -c 'echo rootful-ok' 2>&1) && [[ $out == *rootful-ok* ]]; then
  ok "rootful podman run (root, --runtime $RUNTIME_WRAPPER)"
else warn "rootful podman run failed: $out"; fi

# Cross-over tests put a client in a container of CROSS_USER that must reach a
# socket on the host's 127.0.0.1: slirp4netns maps 10.0.2.2 to the host's
# loopback only with allow_host_loopback=true.
port=$(( 20000 + RANDOM % 10000 ))
lf=$(mktemp); chmod 0644 "$lf"
timeout 30 nc -d -l 127.0.0.1 "$port" >"$lf" 2>/dev/null &
ncpid=$!
for _ in $(seq 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
if out=$(as_user "$CROSS_USER" timeout 30 podman run --rm --network slirp4netns:allow_host_loopback=true \
           "$BBOX_IMAGE" /bin/sh -c "echo cross-ok | nc -w 5 10.0.2.2 $port" 2>&1) \
   && wait "$ncpid" && grep -q cross-ok "$lf"; then
  ok "$CROSS_USER container (slirp4netns, allow_host_loopback) reaches host 127.0.0.1 via 10.0.2.2"
else
  kill "$ncpid" 2>/dev/null || true
  die "$CROSS_USER container could not reach 127.0.0.1:$port on the host via 10.0.2.2: $out"
fi
rm -f "$lf"

ok "podman $(podman --version | awk '{print $3}'), $(as_rig podman info --format '{{.Store.GraphDriverName}} storage, {{.Host.CgroupManager}} cgroups {{.Host.CgroupsVersion}}, runtime {{.Host.OCIRuntime.Name}}' 2>/dev/null)"
ok "$P5_USER: $(as_user "$P5_USER" podman --version), $(as_user "$P5_USER" podman info --format '{{.Store.GraphDriverName}} storage, {{.Host.CgroupManager}} cgroups {{.Host.CgroupsVersion}}, runtime {{.Host.OCIRuntime.Name}}, rootless network {{.Host.RootlessNetworkCmd}}' 2>/dev/null)"
ok "user manager: $(as_rig systemctl --user is-system-running 2>/dev/null || true); as $RIG_USER use:"
echo "       runuser -u $RIG_USER -- env XDG_RUNTIME_DIR=/run/user/$RIG_UID systemctl --user ..."
printf '== rig ready in %ss\n' "$(( SECONDS - T0 ))"
