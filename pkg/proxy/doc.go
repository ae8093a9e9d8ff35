// Package proxy is bro-proxy's engine: it accepts on inherited listening
// sockets, holds each client while its backend starts, connects it to the
// target inside the backend's network namespace and relays the bytes both
// ways in the kernel, until either side ends.
//
// Where things are:
//   - proxy.go: Proxy (the configuration; its zero value plus Listeners and
//     Backend works), Serve, accept, the connection limit, dialling with
//     cold-start retries, idle exit, drain, status counters.
//   - relay_linux.go, pipe_linux.go: the data path. One epoll loop per CPU
//     owns every established connection's two sockets; splice pipes come
//     from a small pool only while bytes are in flight. An idle connection
//     holds its two sockets and nothing else.
//   - backend.go: the Backend seam (where backend sockets are made) and its
//     kinds: Own, NetNS, PID (Static), Container (follows bro-hook's records
//     across restarts). A new kind of backend implements Backend.
//   - listeners.go: Inherit (LISTEN_FDS to listeners, targets by name or
//     position); udp.go: UDP flows; proxyproto.go: the PROXY protocol
//     header; drain.go: closing queued clients when exiting on an error;
//     allow.go: who may connect (--allow, pkg/allow), checked before a
//     client reaches anything else.
//   - A new protocol: a Listener kind in listeners.go and its serving loop
//     next to acceptLoop and relayUDP, started from Serve.
//
// Privileges: none. Entering a backend's namespace goes through pkg/ns,
// which refuses a namespace the caller does not own. Per-connection failures
// are logged and never end Serve; a listener failure does.
//
// Threads: a relay loop is one goroutine. It waits in the runtime's poller
// for its epoll descriptor and then reads the events with a zero-timeout
// epoll_wait, and moves bytes with raw system calls on nonblocking
// descriptors, so no thread sits blocked in a system call (which would make
// sysmon poll every 20 µs to take its P). Loops never enter a namespace.
// Sockets are made in a backend's namespace by pkg/ns, on its own locked
// thread or helper process.
package proxy
