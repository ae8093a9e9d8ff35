package fdpass

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Send writes data with fds attached as SCM_RIGHTS. The caller keeps its own
// copies of fds and closes them when it likes.
func Send(c *net.UnixConn, data []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := c.WriteMsgUnix(data, oob, nil)
	if err != nil {
		return fmt.Errorf("send %d descriptors: %w", len(fds), err)
	}
	if n != len(data) || oobn != len(oob) {
		return fmt.Errorf("send %d descriptors: short write (%d of %d bytes)", len(fds), n, len(data))
	}
	return nil
}

// Recv reads one message into buf and at most maxFDs descriptors. It returns
// the byte count and the descriptors, close-on-exec (Go passes
// MSG_CMSG_CLOEXEC). If the control data was truncated, or holds more than
// maxFDs descriptors or anything but SCM_RIGHTS, every received descriptor is
// closed and an error returned.
func Recv(c *net.UnixConn, buf []byte, maxFDs int) (int, []int, error) {
	oob := make([]byte, unix.CmsgSpace(4*max(maxFDs, 1)))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, nil, fmt.Errorf("receive descriptors: %w", err)
	}
	fds, perr := parseRights(oob[:oobn])
	switch {
	case perr != nil:
	case flags&unix.MSG_CTRUNC != 0:
		perr = errors.New("control message truncated")
	case len(fds) > maxFDs:
		perr = fmt.Errorf("got %d descriptors, want at most %d", len(fds), maxFDs)
	}
	if perr != nil {
		CloseAll(fds)
		return 0, nil, fmt.Errorf("receive descriptors: %w", perr)
	}
	return n, fds, nil
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	var bad error
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = fmt.Errorf("unexpected control message level %d type %d", m.Header.Level, m.Header.Type)
			continue
		}
		fds = append(fds, got...)
	}
	if bad != nil {
		CloseAll(fds)
		return nil, bad
	}
	return fds, nil
}

// CloseAll closes every descriptor in fds, for error paths.
func CloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
