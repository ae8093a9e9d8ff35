#!/usr/bin/env bash
# flatten-cgroups.sh: on the rig's cgroup v1 hierarchy (no systemd as PID 1),
# pull the processes that podman --cgroups=split pushed down into
# $V1_CGROUP/runtime/runtime/... back up into $V1_CGROUP, and remove the
# empty children. Each container start nests one level deeper; at about 500
# levels the path passes PATH_MAX and Podman fails with "file name too long".
# rig-up.sh --flatten-cgroups runs it; helpers.bash runs it before each test
# (between tests, never during one). Prints what it flattened; as root.
#
# The walk goes down with relative cd's: a deep cgroup's absolute path is
# itself too long to open.
set -uo pipefail
V1_CGROUP=${V1_CGROUP:-brotest}

# drain: move every process below the current directory to fd 9 (the base
# cgroup's cgroup.procs) and remove the emptied directories, deepest first.
drain() {
  local d p
  for d in */; do
    [[ -d $d ]] || continue
    cd "$d" || continue
    drain
    # the cpuset move fails silently (its children have no cpus): harmless
    while read -r p; do echo "$p" >&9 2>/dev/null; done <cgroup.procs
    cd .. && rmdir "$d" 2>/dev/null
  done
}

for base in /sys/fs/cgroup/*/"$V1_CGROUP"; do
  [[ -d $base/runtime ]] || continue
  (
    exec 9>"$base/cgroup.procs" || exit 0
    cd "$base/runtime" || exit 0
    drain
    while read -r p; do echo "$p" >&9 2>/dev/null; done <cgroup.procs
    cd .. && rmdir runtime 2>/dev/null
    exit 0
  )
  echo "flattened $base"
done
