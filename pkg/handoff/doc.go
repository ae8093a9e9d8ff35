// Package handoff gives a host socket to an unmodified server's own bind():
// the engine of the handoff mode, in which a container's server listens and
// accepts on the socket systemd holds, with no process relaying its bytes.
//
// Two halves. FilterSpec turns the container's seccomp filter, as Podman
// resolved it into config.json (the distribution's default profile or the
// user's), into a handoff filter: bind and listen (and accept and accept4,
// for a server whose accept() waits for its unit to be ready) become
// SCMP_ACT_NOTIFY, and listenerPath names the agent's socket, to which runc
// sends the container's seccomp listener. bro-hook applies it at the OCI
// precreate stage, when Podman lets a hook rewrite config.json. A Handler answers that listener's notifications: a bind()
// of a port and socket type in its Table gets the host socket instead
// (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD onto the
// descriptor being bound, then success without running the call); every other
// call continues unchanged (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
//
// # Rules
//
//   - Any address of the port matches (0.0.0.0, ::, 127.0.0.1, ::1, or a
//     specific one), and the socket type must match the host socket's; the
//     family need not (an AF_INET6 socket may be replaced by an AF_INET one,
//     which simple servers such as busybox httpd accept).
//   - A host socket is held by at most one process at a time. The first
//     matching bind gets it; a later one, such as PostgreSQL's second bind of
//     the same port on :: after 0.0.0.0, proceeds normally (in a container's
//     own network namespace it binds a socket of its own; in the host's
//     namespace it fails with EADDRINUSE). Giving both binds the same socket
//     made the postmaster block in accept() and ignore SIGINT. Once the holder
//     has exited (its pidfd polls readable) the next matching bind, from a
//     restarted server or a new container on the same Table, gets it again.
//   - A listen() on a host socket that listens already succeeds without
//     running: the server's backlog (PostgreSQL's 244, busybox's 9) would
//     replace the host socket's Backlog=. This is why listen is notified too.
//   - With Handler.Ready (units with Notify=), a server that is not ready
//     yet gets a placeholder at bind() and the host socket at its first
//     accept() after Table.Wake (placeholder_linux.go): its clients wait in
//     the host socket's queue until it is ready.
//   - Only the native system call ABI is handled; calls of a compat ABI
//     (i386 binaries on x86_64, which may bind through socketcall) continue
//     unchanged and never receive a host socket.
//
// # Privileges
//
// None. The agent must be the owner of the container's user namespace, as
// the user running rootless Podman is: then process_vm_readv (to read the
// sockaddr) and pidfd_getfd (to read SO_TYPE and SO_DOMAIN of the descriptor
// being bound, and to recognise a host socket at listen()) pass the ptrace
// access check, even when the server runs as a non-root container user. For
// such a server /proc/PID/mem, /proc/PID/fd and /proc/PID/fdinfo are
// refused, so none is used, except fdinfo as a best effort for FD_CLOEXEC
// (below). Yama's ptrace_scope 3 refuses the agent; scopes 1 and 2 admit a
// process with CAP_SYS_PTRACE in the target's user namespace, which its owner
// has (not tried: the test machine's kernel has no Yama). The tests need no
// privilege either: a filter with a listener needs only no_new_privs.
//
// # Threads
//
// A notification names the calling thread, not the process. The process id
// comes from the Tgid line of /proc/TID/status, because pidfd_open accepts
// only a thread group leader before Linux 6.9 (PIDFD_THREAD), and because the
// holder of a host socket is a process, which outlives its threads. After
// reading the target's memory and descriptor the Handler checks the
// notification is still valid (SECCOMP_IOCTL_NOTIF_ID_VALID): the thread is
// then still stopped in the call, so the pid was not reused meanwhile. A
// thread that left its process's descriptor table (unshare(CLONE_FILES)) would
// be inspected through the leader's table while ADDFD goes to its own; this is
// not detected.
//
// Serve needs no locked OS thread: it enters no namespace, and the listener
// joins Go's poller, so no thread waits in an ioctl.
//
// # Pitfalls
//
//   - The notified calls must leave the profile's ALLOW rule, or runc fails
//     ("error adding seccomp filter rule for syscall bind: file exists").
//     FilterSpec refuses a filter that allows them only under conditions:
//     CONTINUE would then allow what the filter refused.
//   - With no agent at listenerPath the container does not start. If the
//     agent dies later, every notified call fails with ENOSYS: every bind and
//     listen (and accept, where notified) in the container.
//   - The host socket's open file description is shared with systemd: options
//     and O_NONBLOCK the server sets stay after it exits, and a non-blocking
//     host socket makes the server's accept() non-blocking too.
//   - getsockname reports the host socket's address and port.
//   - FD_CLOEXEC belongs to the target's descriptor, which pidfd_getfd cannot
//     read. It is kept when fdinfo is readable (the server runs as the
//     agent's user); otherwise the replaced descriptor is close-on-exec.
//   - A process can have one seccomp listener; --privileged and
//     seccomp=unconfined switch the filter, and so the hand-over, off.
//   - A Table's holders live in memory: an agent restarted while a container
//     runs starts with every host socket free.
package handoff
