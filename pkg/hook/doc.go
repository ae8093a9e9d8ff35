// Package hook is the OCI hook's side of Brothaman: the container state a
// runtime writes to a hook's stdin, and the records of running containers that
// bro-proxy follows. The bro.activate grammar is package annotation.
//
// Records live in a per-user state directory: /run/bro for root,
// /run/user/UID/bro for a rootless user. A rootless Podman runs its hooks as
// uid 0 inside the user's user namespace with no environment, so the owner
// is found from /proc/self/uid_map, never from $XDG_RUNTIME_DIR. The directory
// is 0700 and owned by that user; records are written with temp file + rename
// relative to the open directory and read with O_NOFOLLOW, so a reader never
// sees half a record and a planted symlink is never followed.
//
// Privileges: none beyond those of the container's owner. Reading
// /proc/PID/ns/net of a container process needs ptrace read access to it,
// which the owner of its user namespace has.
package hook
