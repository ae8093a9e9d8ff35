// Package nsenter links into a binary the C constructor that joins the
// namespaces of a namespace helper before the Go runtime starts, as runc's
// libcontainer/nsenter does. It has no Go API: the binary that starts
// helpers (bro-proxy) imports it for its side effect, and calls
// ns.IsHelper and ns.RunHelper first thing in main:
//
//	import _ "github.com/brothaman/brothaman-go/pkg/ns/nsenter"
//
//	func main() {
//		if ns.IsHelper() {
//			ns.RunHelper() // never returns
//		}
//		...
//	}
//
// Why a constructor: setns(CLONE_NEWUSER) is refused to a multi-threaded
// process, and a Go process has threads before main runs. Why a package of
// its own: cgo and the constructor belong only in the binary that re-executes
// itself as a helper; the hook and bro-activate use package ns (handles,
// start times) without linking either.
//
// The constructor is inert unless _BRO_NSENTER is set, which only package ns
// sets, on a child it starts from /proc/self/exe with the namespace
// descriptors at fixed numbers (see nsenter_linux.c). A failed setns prints
// one line and exits 126 before any Go code runs. Once in, the constructor
// serves the parent's socket requests itself and exits when the parent
// closes its end: a helper's Go runtime never starts (one thread and about
// 1.4 MB resident instead of five threads and 6 MB). A binary that starts a
// helper without linking this package gets a helper that never left the
// parent's namespaces; package ns checks the child's namespaces after its
// first answer and refuses it.
//
// Privileges: none of its own. Joining a user namespace needs the caller to
// own it (the helper's uid is the user's), joining a network or mount
// namespace needs CAP_SYS_ADMIN in the user namespace that owns it, which
// the joined user namespace (or root's own) grants. No setuid bit or file
// capability is involved; the helper can enter nothing its user could not
// enter with nsenter(1).
package nsenter
