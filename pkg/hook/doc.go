// Package hook is the OCI hook's own logic: the container state a runtime
// writes to the hook's stdin (ReadState), and from it the record of a running
// container (NewRecord) that bro-hook stores with package record and
// bro-proxy follows; and, at Podman's precreate stage, the config.json of a
// container about to be created (ReadConfig), which Precreate passes through
// or, for bro.mode=handoff, gives the seccomp filter of package handoff. The
// bro.activate grammar is package annotation.
//
// NewRecord identifies the container's process by pid and start time and its
// network namespace by device and inode, names the container from
// containers/storage (then CRI-O's io.kubernetes.cri-o.Name annotation, then
// conmon's arguments) and its systemd unit from its cgroup. It refuses a container that shares the hook's own network
// namespace.
//
// Privileges: none beyond those of the container's owner. Reading
// /proc/PID/ns/net of a container process needs ptrace read access to it,
// which the owner of its user namespace has. The hook never enters a
// namespace and links no cgo of its own. Poststop gets pid 0 (the process is
// gone) and must never block a stop.
package hook
