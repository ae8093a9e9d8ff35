// The helper half of package ns (pkg/ns/nsenter): join namespaces before the
// Go runtime starts.
//
// setns(CLONE_NEWUSER) fails with EINVAL in a multi-threaded process, and the
// Go runtime starts threads before main. A constructor runs while the process
// is still single-threaded. It is inert unless _BRO_NSENTER is set, which
// only package ns sets, on a child it starts from /proc/self/exe with the
// namespace descriptors at fixed numbers: fd 4 the network namespace, fd 5
// the user namespace, fd 6 the mount namespace. The value lists which to
// join, in this order: user (first: it grants the capabilities the others
// need), net, mnt (last: it changes the root and working directory).
//   _BRO_NSENTER=net | user,net | net,mnt | user,net,mnt
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRO_NETNS_FD 4
#define BRO_USERNS_FD 5
#define BRO_MNTNS_FD 6

static void bro_fail(const char *what)
{
	fprintf(stderr, "bro-proxy namespace helper: %s: %s\n", what, strerror(errno));
	_exit(126);
}

static void bro_join(int fd, int nstype, const char *what)
{
	if (setns(fd, nstype) < 0)
		bro_fail(what);
	close(fd);
}

__attribute__((constructor)) static void bro_nsenter(void)
{
	const char *mode = getenv("_BRO_NSENTER");
	int user, mnt;

	if (mode == NULL || *mode == '\0')
		return;
	if (strcmp(mode, "net") == 0) {
		user = 0; mnt = 0;
	} else if (strcmp(mode, "user,net") == 0) {
		user = 1; mnt = 0;
	} else if (strcmp(mode, "net,mnt") == 0) {
		user = 0; mnt = 1;
	} else if (strcmp(mode, "user,net,mnt") == 0) {
		user = 1; mnt = 1;
	} else {
		errno = EINVAL;
		bro_fail("unknown _BRO_NSENTER mode");
		return;
	}
	if (user)
		bro_join(BRO_USERNS_FD, CLONE_NEWUSER, "join user namespace");
	bro_join(BRO_NETNS_FD, CLONE_NEWNET, "join network namespace");
	if (mnt)
		bro_join(BRO_MNTNS_FD, CLONE_NEWNS, "join mount namespace");
}
