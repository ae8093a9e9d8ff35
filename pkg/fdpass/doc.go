// Package fdpass moves file descriptors between processes: the systemd
// LISTEN_FDS protocol on the receiving side (sd_listen_fds(3)) and SCM_RIGHTS
// over unix sockets.
//
// It needs no privileges. Every descriptor it returns is close-on-exec, and on
// any error every descriptor it received is closed before returning, so a
// caller never leaks one.
package fdpass
