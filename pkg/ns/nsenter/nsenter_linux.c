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
//
// Then it serves the parent's socket requests itself (bro_serve) and exits
// when the parent goes: the Go runtime of a helper never starts. A helper is
// one per rootless backend namespace, alive as long as the proxy; in C it
// costs a few hundred KiB of resident memory instead of the ~5 MiB of a Go
// runtime, and a socket costs the system calls alone.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BRO_NETNS_FD 4
#define BRO_USERNS_FD 5
#define BRO_MNTNS_FD 6
#define BRO_CTL_FD 3

// The protocol, the same as package ns's helper (helper_linux.go): a request
// is 12 bytes (domain, type, protocol: int32, little-endian), or 16 with a
// count (a batch of at most BRO_MAX_BATCH sockets), or 12 plus a path with
// domain BRO_REQ_CONNECT_UNIX (connect that unix socket in this mount
// namespace). The answer is 4 bytes, the errno (0: none), with the
// descriptors made before the first error as SCM_RIGHTS.
#define BRO_MAX_BATCH 32
#define BRO_REQ_CONNECT_UNIX (-1)

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

static int32_t bro_le32(const unsigned char *b)
{
	return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

// bro_socket_ok keeps what the helper makes to what a proxy needs (as
// checkSocketArgs in Go): no raw or netlink sockets.
static int bro_socket_ok(int32_t domain, int32_t type, int32_t proto)
{
	int t = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX)
		return 0;
	if (t != SOCK_STREAM && t != SOCK_DGRAM)
		return 0;
	return proto == 0;
}

// bro_reply sends the errno and n descriptors, then closes them. It returns
// -1 when the parent is gone.
static int bro_reply(int err, int *fds, int n)
{
	unsigned char b[4] = { err & 0xff, (err >> 8) & 0xff, (err >> 16) & 0xff, (err >> 24) & 0xff };
	union {
		char buf[CMSG_SPACE(sizeof(int) * BRO_MAX_BATCH)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = b, .iov_len = sizeof(b) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;
	int i;

	if (n > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	do
		r = sendmsg(BRO_CTL_FD, &m, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	for (i = 0; i < n; i++)
		close(fds[i]);
	return r == (ssize_t)sizeof(b) ? 0 : -1;
}

static int bro_connect_unix(const unsigned char *path, size_t len, int *fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s;

	if (len == 0 || len >= sizeof(sa.sun_path) || memchr(path, 0, len) != NULL)
		return EINVAL;
	memcpy(sa.sun_path, path, len);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(s);
		return e;
	}
	*fd = s;
	return 0;
}

// bro_serve answers requests on BRO_CTL_FD until the parent closes its end
// (or dies: the parent set PR_SET_PDEATHSIG), then exits.
static void bro_serve(void)
{
	unsigned char req[16 + 108];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;

	for (;;) {
		struct iovec iov = { .iov_base = req, .iov_len = sizeof(req) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c;
		int fds[BRO_MAX_BATCH], n = 0, err = 0;
		int32_t domain, type, proto;
		ssize_t got;

		got = recvmsg(BRO_CTL_FD, &m, MSG_CMSG_CLOEXEC);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			bro_fail("read request");
		if (got == 0)
			_exit(0);
		// the parent sends no descriptors: close any that came
		for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int *in = (int *)CMSG_DATA(c);
				size_t k, cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (k = 0; k < cnt; k++)
					close(in[k]);
			}
		}
		if (got < 12) {
			err = EINVAL;
		} else {
			domain = bro_le32(req);
			type = bro_le32(req + 4);
			proto = bro_le32(req + 8);
			if (domain == BRO_REQ_CONNECT_UNIX) {
				err = bro_connect_unix(req + 12, (size_t)got - 12, &fds[0]);
				n = err == 0;
			} else if (!bro_socket_ok(domain, type, proto)) {
				err = EINVAL;
			} else {
				int32_t want = got == 16 ? bro_le32(req + 12) : 1;

				if (want > BRO_MAX_BATCH)
					want = BRO_MAX_BATCH;
				while (n < want) {
					int s = socket(domain, type | SOCK_CLOEXEC, proto);

					if (s < 0) {
						err = errno;
						break;
					}
					fds[n++] = s;
				}
			}
		}
		if (bro_reply(err, fds, n) < 0)
			_exit(0);
	}
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
	bro_serve(); // never returns
}
