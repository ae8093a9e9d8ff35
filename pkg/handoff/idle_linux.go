package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brothaman/brothaman-go/internal/sockdiag"
)

// In the handoff mode no process of ours sees a connection, so an idle stop
// counts them in the kernel: the TCP sockets of the host's network namespace
// whose local port is a host socket's, established or on their way to be
// (clients queued in the accept queue count: they wait for the server). One
// netlink sock_diag dump of the namespace's TCP sockets, filtered here.

// tcpBusy are the TCP states of a connection that is not over yet
// (linux/tcp_states.h: ESTABLISHED 1, SYN_RECV 3, FIN_WAIT1 4, CLOSE_WAIT 8,
// LAST_ACK 9 — the server may still be answering).
const tcpBusy = 1<<1 | 1<<3 | 1<<4 | 1<<8 | 1<<9

// Connections counts the connections of the host's TCP sockets in t, in the
// network namespace of the calling thread. It needs AF_NETLINK.
func (t *Table) Connections() (int, error) {
	ports := map[uint16]bool{}
	families := map[int]bool{}
	for _, s := range t.sockets {
		if s.Type == unix.SOCK_STREAM {
			ports[s.Port] = true
			families[s.Family] = true
		}
	}
	n := 0
	for f := range families {
		c, err := countTCP(f, ports)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// countTCP dumps the TCP sockets of family in a busy state and counts those
// whose local port is in ports.
func countTCP(family int, ports map[uint16]bool) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("open netlink sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, fmt.Errorf("netlink sock_diag socket: SO_RCVTIMEO: %w", err)
	}
	var req [unix.NLMSG_HDRLEN + sockdiag.SizeofReqV2]byte
	sockdiag.PutHeader(req[:], unix.NLM_F_DUMP, 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0], r[1] = byte(family), unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], tcpBusy)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag dump request: %w", err)
	}
	buf := make([]byte, 32<<10)
	count := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("sock_diag dump: %w", err)
		}
		c, done, err := countReply(buf[:n], ports)
		count += c
		if err != nil || done {
			return count, err
		}
	}
}

// countReply counts the inet_diag_msg in b whose source port is in ports;
// done at NLMSG_DONE.
func countReply(b []byte, ports map[uint16]bool) (count int, done bool, err error) {
	werr := sockdiag.Each(b, func(typ uint16, _ uint32, data []byte) bool {
		switch typ {
		case unix.NLMSG_DONE:
			done = true
			return false
		case unix.NLMSG_ERROR:
			done = true
			errno, e := sockdiag.Errno(data)
			if err = e; e == nil {
				err = fmt.Errorf("sock_diag dump: %w", errno)
			}
			return false
		case unix.SOCK_DIAG_BY_FAMILY:
			// struct inet_diag_msg: family, state, timer, retrans, then
			// inet_diag_sockid with idiag_sport (big endian) first.
			if len(data) >= 6 && ports[binary.BigEndian.Uint16(data[4:])] {
				count++
			}
		}
		return true
	})
	if werr != nil {
		return count, true, werr
	}
	return count, done, err
}

// IdleWatch calls idle once no connection of t's TCP sockets has been seen
// for d, checking every tick (d/10, between 1 s and 30 s), until stop is
// closed. A failed count counts as busy and is reported to errf.
func (t *Table) IdleWatch(d time.Duration, stop <-chan struct{}, idle func(), errf func(error)) {
	tick := min(max(d/10, time.Second), 30*time.Second)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tk.C:
			n, err := t.Connections()
			if err != nil {
				errf(err)
			}
			if n > 0 || err != nil {
				last = now
				continue
			}
			if now.Sub(last) >= d {
				idle()
				return
			}
		}
	}
}
