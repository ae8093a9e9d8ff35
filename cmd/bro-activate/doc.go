// Command bro-activate writes the systemd units that start a Podman quadlet
// container on its first connection. One binary, three names (the Makefile
// installs the links):
//
//	bro-activate NAME         NAME-activator.socket + NAME-activator.service:
//	                          systemd listens, bro-proxy carries each connection
//	                          into the container's network namespace.
//	bro-activate-direct NAME  NAME.socket: systemd starts the quadlet's own
//	                          NAME.service and Podman hands the socket to the
//	                          container (LISTEN_FDS), no proxy in between.
//	bro-generator DIR ...     a systemd generator: at every daemon-reload it
//	                          writes the activator units for every quadlet
//	                          with an Annotation=bro.activate=…, so the
//	                          annotation is the only step.
//
// "bro-activate direct NAME" and "bro-activate generator DIR" work too.
//
// # When direct mode fits
//
// Direct mode needs a server that takes its listening sockets from systemd
// (sd_listen_fds(3): LISTEN_FDS, LISTEN_PID, fds from 3 on). Podman 4.3 passes
// them through: it hands the fds to conmon and the runtime (--preserve-fds)
// and sets LISTEN_FDS=N, LISTEN_PID=1 and LISTEN_FDNAMES in the container, as
// checked on the rig. A server that does not read LISTEN_FDS ignores the
// socket: the container starts and clients hang in the accept queue. Tell by
// the image's documentation ("socket activation", "LISTEN_FDS",
// "sd_listen_fds"), or try it without writing any unit:
//
//	systemd-socket-activate -l 127.0.0.1:8080 podman run --rm --network none IMAGE
//
// and connect to 127.0.0.1:8080: an answer means the server took the socket.
// For everything else (PostgreSQL, most images) use bro-activate, whose proxy
// dials the port the server listens on inside the container.
//
// # Privileges
//
// None: a user writes units into ~/.config/systemd/user and runs
// systemctl --user; root writes into /etc/systemd/system. The generator runs
// as the manager's user and writes only into the directory systemd gives it.
package main
