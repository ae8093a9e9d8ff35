package ns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"golang.org/x/sys/unix"
)

// helperEnv selects the constructor's work in the child (see
// nsenter/nsenter_linux.c).
const helperEnv = "_BRO_NSENTER"

// helperCtlFD is where the child finds its end of the request socket.
const helperCtlFD = 3

// ErrHelperExited is returned by a helper's Socket once the helper is gone.
var ErrHelperExited = errors.New("namespace helper exited")

// ErrNoConstructor is wrapped when a helper did not join the namespaces it
// was started for: its binary does not link package nsenter.
var ErrNoConstructor = errors.New("this binary does not link github.com/brothaman/brothaman-go/pkg/ns/nsenter")

// helper is a child process that sits in the target namespaces and answers
// socket requests: 12 bytes (domain, type, protocol as int32) in, 4 bytes
// (errno) plus, on success, one descriptor out. A 16-byte request adds a
// count: up to that many sockets (at most maxBatch) come back in one
// message, so that a pool refills with one round trip, not one per socket.
type helper struct {
	mu   sync.Mutex
	conn *net.UnixConn
	cmd  *exec.Cmd
}

// maxBatch bounds a batch request: well under SCM_RIGHTS' 253 descriptors
// per message, and a pool's depth.
const maxBatch = 32

// reqConnectUnix in the domain field asks the helper to connect the unix
// path that follows the 12-byte header, in its mount namespace.
const reqConnectUnix = -1

func startHelper(userns, netns, mntns *Handle) (*helper, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start namespace helper: socketpair: %w", err)
	}
	parentF := os.NewFile(uintptr(pair[0]), "helper-ctl")
	childF := os.NewFile(uintptr(pair[1]), "helper-ctl-child")
	defer childF.Close()
	conn, err := net.FileConn(parentF)
	parentF.Close()
	if err != nil {
		return nil, fmt.Errorf("start namespace helper: %w", err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"bro-proxy-nshelper"}
	// Fixed descriptor numbers: 3 control, 4 netns, 5 userns, 6 mntns.
	cmd.ExtraFiles = []*os.File{childF, netns.File(), nil, nil}
	mode := "net"
	if userns != nil {
		cmd.ExtraFiles[2] = userns.File()
		mode = "user,net"
	}
	if mntns != nil {
		cmd.ExtraFiles[3] = mntns.File()
		mode += ",mnt"
	}
	cmd.Env = []string{helperEnv + "=" + mode}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start namespace helper: %w", err)
	}
	h := &helper{conn: conn.(*net.UnixConn), cmd: cmd}
	// The first answer proves the child got past its constructor (a failed
	// setns makes it exit and the request see EOF) and serves.
	fd, err := h.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if errors.Is(err, ErrHelperExited) {
		h.Close()
		return nil, fmt.Errorf("start namespace helper: %w", err)
	}
	if err == nil {
		unix.Close(fd)
	}
	// Its namespaces are final by then: check they are the ones asked for.
	// A binary that does not link package nsenter starts a helper that
	// never left ours (and answers ENOSYS: RunHelper).
	for _, want := range []struct {
		kind string
		h    *Handle
	}{{"user", userns}, {"net", netns}, {"mnt", mntns}} {
		if want.h == nil {
			continue
		}
		if err := h.in(want.kind, want.h); err != nil {
			h.Close()
			return nil, fmt.Errorf("start namespace helper: %w", err)
		}
	}
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("start namespace helper: %w", err)
	}
	return h, nil
}

// in checks that the helper process is in namespace want of the given kind
// (user, net or mnt), through the parent's own /proc.
func (h *helper) in(kind string, want *Handle) error {
	pid := h.cmd.Process.Pid
	got, err := Open(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return err
	}
	defer got.Close()
	if !got.Equal(want) {
		return fmt.Errorf("helper (pid %d) is in %s namespace %s, not %s: %w", pid, kind, got, want, ErrNoConstructor)
	}
	return nil
}

func (h *helper) Socket(domain, typ, proto int) (int, error) {
	if err := checkSocketArgs(domain, typ, proto); err != nil {
		return -1, err
	}
	return h.request(domain, typ, proto, "")
}

// Sockets returns up to n sockets in one round trip (n ≤ maxBatch); fewer
// only with an error, which stops the batch (EMFILE in the helper, say).
func (h *helper) Sockets(domain, typ, proto, n int) ([]int, error) {
	if err := checkSocketArgs(domain, typ, proto); err != nil {
		return nil, err
	}
	n = max(1, min(n, maxBatch))
	req := make([]byte, 16)
	binary.LittleEndian.PutUint32(req[0:], uint32(int32(domain)))
	binary.LittleEndian.PutUint32(req[4:], uint32(typ))
	binary.LittleEndian.PutUint32(req[8:], uint32(proto))
	binary.LittleEndian.PutUint32(req[12:], uint32(n))
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := fdpass.Send(h.conn, req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHelperExited, err)
	}
	var resp [4]byte
	got, fds, err := fdpass.Recv(h.conn, resp[:], n)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrHelperExited, err)
	case got == 0:
		return nil, ErrHelperExited
	case got != 4:
		fdpass.CloseAll(fds)
		return nil, fmt.Errorf("namespace helper: reply of %d bytes", got)
	}
	if errno := binary.LittleEndian.Uint32(resp[:]); errno != 0 && len(fds) == 0 {
		return nil, fmt.Errorf("socket in namespace: %w", syscall.Errno(errno))
	}
	return fds, nil
}

// ConnectUnix has the helper connect path in its mount namespace.
func (h *helper) ConnectUnix(path string) (int, error) {
	if len(path) == 0 || len(path) >= 108 {
		return -1, fmt.Errorf("unix socket path %q: want 1-107 bytes", path)
	}
	return h.request(reqConnectUnix, 0, 0, path)
}

func (h *helper) request(domain, typ, proto int, path string) (int, error) {
	req := make([]byte, 12, 12+len(path))
	binary.LittleEndian.PutUint32(req[0:], uint32(int32(domain)))
	binary.LittleEndian.PutUint32(req[4:], uint32(typ))
	binary.LittleEndian.PutUint32(req[8:], uint32(proto))
	req = append(req, path...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := fdpass.Send(h.conn, req); err != nil {
		return -1, fmt.Errorf("%w: %v", ErrHelperExited, err)
	}
	var resp [4]byte
	n, fds, err := fdpass.Recv(h.conn, resp[:], 1)
	switch {
	case err != nil:
		return -1, fmt.Errorf("%w: %v", ErrHelperExited, err)
	case n == 0:
		return -1, ErrHelperExited
	case n != 4:
		fdpass.CloseAll(fds)
		return -1, fmt.Errorf("namespace helper: reply of %d bytes", n)
	}
	if errno := binary.LittleEndian.Uint32(resp[:]); errno != 0 {
		fdpass.CloseAll(fds)
		return -1, fmt.Errorf("socket in namespace: %w", syscall.Errno(errno))
	}
	if len(fds) != 1 {
		fdpass.CloseAll(fds)
		return -1, fmt.Errorf("namespace helper: got %d descriptors, want 1", len(fds))
	}
	return fds[0], nil
}

func (h *helper) Close() error {
	h.conn.Close() // the child reads EOF and exits
	return h.cmd.Wait()
}

// IsHelper reports whether this process was started as a namespace helper.
// A main that imports this package calls it first, before flags or logging.
func IsHelper() bool { return os.Getenv(helperEnv) != "" }

// RunHelper is reached only in a binary that does not link package nsenter:
// there, the constructor joins the namespaces and serves the requests in C
// (nsenter_linux.c) and the Go runtime never starts. Without it the child
// never left the parent's namespaces, so it makes no socket: it answers
// every request with ENOSYS, which startHelper reports as ErrNoConstructor
// after it has checked the child's namespaces, and exits with its parent.
func RunHelper() {
	f := os.NewFile(helperCtlFD, "helper-ctl")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bro-proxy namespace helper: %v\n", err)
		os.Exit(126)
	}
	conn := c.(*net.UnixConn)
	var req [16 + 108]byte
	var resp [4]byte
	binary.LittleEndian.PutUint32(resp[:], uint32(unix.ENOSYS))
	for {
		n, fds, err := fdpass.Recv(conn, req[:], 0)
		fdpass.CloseAll(fds)
		if err != nil || n == 0 || fdpass.Send(conn, resp[:]) != nil {
			os.Exit(0)
		}
	}
}
