// Package record is what passes from bro-hook to bro-proxy: one JSON record
// per running container (id, name, unit, pid and start time, network
// namespace device and inode, owner, ports), the per-user state directory
// that holds them, and a watcher that says when they change. The hook writes
// and removes records; the proxy lists, verifies and follows them.
//
// The state directory is /run/bro for root and /run/user/UID/bro for a
// rootless user. A rootless Podman runs its hooks as uid 0 inside the user's
// user namespace with no environment, so the owner is found from
// /proc/self/uid_map (HostUID), never from $XDG_RUNTIME_DIR. The directory is
// 0700 and owned by the caller; every operation is relative to its open
// descriptor, records are written with temp file + rename and read with
// O_NOFOLLOW and O_NONBLOCK, so a reader never sees half a record and a
// planted symlink or FIFO is never followed or waited on.
//
// A record is a claim, not a proof: a reader checks it against the live
// process (Alive: same pid, same start time, not a zombie) and the namespace
// it opens (device and inode) before entering anything.
//
// Privileges: none beyond those of the directory's owner. The watcher is one
// inotify descriptor and one goroutine reading it, both released by Close;
// it watches the directory it was given, through its descriptor, whatever
// its path names later.
package record
