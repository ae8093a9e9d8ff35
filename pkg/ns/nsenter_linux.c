// The helper half of package ns: join namespaces before the Go runtime starts.
//
// setns(CLONE_NEWUSER) fails with EINVAL in a multi-threaded process, and the
// Go runtime starts threads before main. A constructor runs while the process
// is still single-threaded. It is inert unless _BRO_NSENTER is set, which
// only package ns sets, on a child it starts from /proc/self/exe with the
// namespace descriptors at fixed numbers:
//   _BRO_NSENTER=net       fd 4 is the network namespace
//   _BRO_NSENTER=user,net  fd 5 is the user namespace, joined first
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRO_NETNS_FD 4
#define BRO_USERNS_FD 5

static void bro_fail(const char *what)
{
	fprintf(stderr, "bro-proxy namespace helper: %s: %s\n", what, strerror(errno));
	_exit(126);
}

__attribute__((constructor)) static void bro_nsenter(void)
{
	const char *mode = getenv("_BRO_NSENTER");
	if (mode == NULL || *mode == '\0')
		return;
	if (strcmp(mode, "user,net") == 0) {
		if (setns(BRO_USERNS_FD, CLONE_NEWUSER) < 0)
			bro_fail("join user namespace");
		close(BRO_USERNS_FD);
	} else if (strcmp(mode, "net") != 0) {
		errno = EINVAL;
		bro_fail("unknown _BRO_NSENTER mode");
	}
	if (setns(BRO_NETNS_FD, CLONE_NEWNET) < 0)
		bro_fail("join network namespace");
	close(BRO_NETNS_FD);
}
