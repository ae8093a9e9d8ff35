// Package ns creates sockets inside another process's network namespace.
//
// Only socket creation happens inside the namespace: a socket keeps the
// network namespace it was created in for its whole life, so once created it
// is connected, read and written from any thread. Listeners stay where they
// are (the host's, inherited from systemd).
//
// Privileges. Joining a network namespace needs CAP_SYS_ADMIN in the user
// namespace that owns it and in the caller's own. Two cases follow:
//
//   - The namespace belongs to the caller's user namespace (rootful Podman,
//     `ip netns add`): root creates sockets from a dedicated goroutine that
//     locks its OS thread, joins the namespace and never leaves it. When the
//     namespace is no longer needed the goroutine returns without unlocking,
//     so the Go runtime ends the thread instead of reusing a thread that sits
//     in the wrong namespace.
//   - The namespace belongs to a child user namespace that the caller owns
//     (rootless Podman): an unprivileged user has every capability there, but
//     setns(CLONE_NEWUSER) is refused to a multi-threaded process, and a Go
//     process always is. So a helper is started from /proc/self/exe; a cgo
//     constructor (package nsenter, which only bro-proxy's main imports)
//     joins the user and network namespaces from descriptors the parent
//     opened and verified, before the Go runtime starts any thread, as runc's
//     nsenter does. The helper then answers socket requests over a
//     SOCK_SEQPACKET pair with SCM_RIGHTS. It needs no setuid bit and no file
//     capability, and can enter nothing its user could not enter with
//     nsenter(1). Its namespaces are checked after its first answer: a binary
//     that starts helpers without linking nsenter is refused
//     (ErrNoConstructor), never served from the wrong namespace.
//
// A namespace owned by a user namespace the caller neither is in nor owns is
// refused before anything is entered. Every namespace is held as an open
// descriptor, checked to be on nsfs, and compared by device and inode.
//
// The package has no cgo of its own: bro-hook uses its handles without
// linking the constructor, and builds with CGO_ENABLED=0.
package ns
