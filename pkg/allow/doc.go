// Package allow is who may connect to an activator socket: the grammar of
// Annotation=bro.allow=… and bro-activate --allow (Parse), the rule resolved
// against the user and group databases when bro-proxy starts (Resolve), and
// the check of one client (Guard).
//
// Where things are:
//   - allow.go: the grammar, pure Go, shared by bro-activate, its generator
//     and bro-proxy. A value that parses here is accepted by all of them;
//     one that does not is refused with an *Error naming the value, the
//     entry and the rule.
//   - resolve.go: names, uid:N and @GROUP to uids (groups by primary and
//     supplementary membership, from /etc/passwd and /etc/group), the
//     subordinate ranges of those users (/etc/subuid), and the address
//     entries. Read once, when bro-proxy starts.
//   - diag_linux.go: the owner of a client's socket, by netlink sock_diag
//     (inet_diag) for TCP and UDP, by SO_PEERCRED for unix sockets.
//   - guard_linux.go: Guard, the decision for one client, failing closed.
//
// Privileges: none. sock_diag answers an unprivileged process about any
// socket of its network namespace, and reports uids as seen from the user
// namespace of the netlink socket's creator: Guard's netlink sockets are
// opened by NewGuard, so bro-proxy opens them in its own (the host's) user
// and network namespace before it enters anything.
//
// Threads: Guard is safe for concurrent use. A lookup holds one of a few
// netlink sockets for one request and its reply (the kernel answers before
// the write returns; a read waits at most a second), and waits for a free
// one if all are in use. The sockets are opened once, by NewGuard: no lookup
// opens a socket, so none depends on the namespace of the thread it runs on.
package allow
