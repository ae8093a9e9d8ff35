package fdpass

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair returns both ends of a connected SOCK_SEQPACKET unix socket pair.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close() // FileConn holds its own duplicate
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// openFiles opens n distinct files under t.TempDir.
func openFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	dir := t.TempDir()
	var files []*os.File
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	return files
}

func fdsOf(files []*os.File) []int {
	var fds []int
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	return fds
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func sameFile(t *testing.T, a, b int) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func TestSendRecv(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		nFiles int
		maxFDs int
	}{
		{"plain data", "hello", 0, 1},
		{"plain data, no descriptors allowed", "hello", 0, 0},
		{"one descriptor", "x", 1, 1},
		{"one descriptor, room for more", "x", 1, 8},
		{"three descriptors", "xyz", 3, 3},
		{"many descriptors", "m", 64, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketPair(t)
			files := openFiles(t, tt.nFiles)
			before := openFDs(t)
			if err := Send(a, []byte(tt.data), fdsOf(files)...); err != nil {
				t.Fatalf("Send: %v", err)
			}
			// The sender keeps its own descriptors.
			for _, f := range files {
				if _, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil {
					t.Errorf("sender's fd %d closed by Send: %v", f.Fd(), err)
				}
			}
			buf := make([]byte, 64)
			n, got, err := Recv(b, buf, tt.maxFDs)
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if string(buf[:n]) != tt.data {
				t.Errorf("Recv data = %q; want %q", buf[:n], tt.data)
			}
			if len(got) != tt.nFiles {
				t.Fatalf("Recv got %d descriptors; want %d", len(got), tt.nFiles)
			}
			for i, fd := range got {
				if fd == int(files[i].Fd()) {
					t.Errorf("descriptor %d came back as the same number %d; want a new one", i, fd)
				}
				if !sameFile(t, fd, int(files[i].Fd())) {
					t.Errorf("descriptor %d (fd %d) is not the file sent", i, fd)
				}
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Errorf("received fd %d flags %#x, %v; want FD_CLOEXEC", fd, flags, err)
				}
			}
			if after := openFDs(t); after != before+tt.nFiles {
				t.Errorf("open descriptors: got %d; want %d (%d before, %d received)", after, before+tt.nFiles, before, tt.nFiles)
			}
			CloseAll(got)
		})
	}
}

// A received descriptor is the same open file: writes through it are seen
// through the original.
func TestRecvSharesTheOpenFile(t *testing.T) {
	a, b := socketPair(t)
	f := openFiles(t, 1)[0]
	if err := Send(a, []byte{0}, int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	_, fds, err := Recv(b, make([]byte, 1), 1)
	if err != nil || len(fds) != 1 {
		t.Fatalf("Recv = %v, %v; want one descriptor", fds, err)
	}
	got := os.NewFile(uintptr(fds[0]), "received")
	defer got.Close()
	if _, err := got.WriteString("through the copy"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "through the copy" {
		t.Errorf("file holds %q; want %q", data, "through the copy")
	}
	if off, _ := f.Seek(0, 1); off != int64(len("through the copy")) {
		t.Errorf("original's offset = %d; want %d (one open file description)", off, len("through the copy"))
	}
}

func TestRecvRefusesTooManyDescriptors(t *testing.T) {
	// Recv's control buffer holds CmsgSpace(4*maxFDs) bytes: on a 64-bit
	// kernel that rounds up to an even number of descriptors. More than fit
	// is truncated by the kernel; more than maxFDs that fit is counted.
	fit := func(maxFDs int) int {
		return (unix.CmsgSpace(4*max(maxFDs, 1)) - unix.CmsgLen(0)) / 4
	}
	tests := []struct {
		name   string
		sent   int
		maxFDs int
	}{
		{"one, none allowed", 1, 0},
		{"two, one allowed", 2, 1},
		{"three, one allowed", 3, 1},
		{"four, two allowed", 4, 2},
		{"four, three allowed", 4, 3},
		{"five, four allowed", 5, 4},
		{"253, two allowed", 253, 2}, // SCM_MAX_FD
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketPair(t)
			files := openFiles(t, tt.sent)
			want := fmt.Sprintf("receive descriptors: got %d descriptors, want at most %d", tt.sent, tt.maxFDs)
			if tt.sent > fit(tt.maxFDs) {
				want = "receive descriptors: control message truncated"
			}
			before := openFDs(t)
			// Repeat so that a leak of even one descriptor shows.
			for i := 0; i < 20; i++ {
				if err := Send(a, []byte("fds"), fdsOf(files)...); err != nil {
					t.Fatalf("Send: %v", err)
				}
				buf := make([]byte, 16)
				n, fds, err := Recv(b, buf, tt.maxFDs)
				if err == nil {
					CloseAll(fds)
					t.Fatalf("Recv = %d bytes, %d descriptors; want error %q", n, len(fds), want)
				}
				if err.Error() != want {
					t.Fatalf("Recv error\n got %s\nwant %s", err, want)
				}
				if n != 0 || fds != nil {
					t.Errorf("Recv = %d, %v with an error; want 0, nil", n, fds)
				}
			}
			if after := openFDs(t); after != before {
				t.Errorf("open descriptors: got %d after refusing; want %d", after, before)
			}
			// The connection still works after a refusal.
			if err := Send(a, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			if n, fds, err := Recv(b, buf, tt.maxFDs); err != nil || string(buf[:n]) != "ok" || len(fds) != 0 {
				t.Errorf("Recv after a refusal = %q, %v, %v; want \"ok\"", buf[:n], fds, err)
			}
		})
	}
}

func TestRecvRefusesCredentials(t *testing.T) {
	a, b := socketPair(t)
	raw, err := b.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	files := openFiles(t, 1)
	before := openFDs(t)
	if err := Send(a, []byte("x"), fdsOf(files)...); err != nil {
		t.Fatal(err)
	}
	// Room for the credentials and the descriptor.
	_, fds, err := Recv(b, make([]byte, 8), 8)
	want := fmt.Sprintf("receive descriptors: unexpected control message level %d type %d", unix.SOL_SOCKET, unix.SCM_CREDENTIALS)
	if err == nil || err.Error() != want {
		CloseAll(fds)
		t.Fatalf("Recv with SO_PASSCRED = %v, %v; want error %q", fds, err, want)
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: got %d after refusing; want %d", after, before)
	}
}

func TestSendErrors(t *testing.T) {
	a, b := socketPair(t)
	b.Close()
	err := Send(a, []byte("x"))
	if err == nil {
		t.Fatal("Send to a closed peer succeeded; want an error")
	}
	if !errors.Is(err, unix.EPIPE) || !strings.HasPrefix(err.Error(), "send 0 descriptors: ") {
		t.Errorf("Send to a closed peer: got %v; want \"send 0 descriptors: ...\" wrapping EPIPE", err)
	}
	c, _ := socketPair(t)
	err = Send(c, []byte("x"), 1<<20)
	if !errors.Is(err, unix.EBADF) || !strings.HasPrefix(err.Error(), "send 1 descriptors: ") {
		t.Errorf("Send of a descriptor that is not open: got %v; want \"send 1 descriptors: ...\" wrapping EBADF", err)
	}
}

func TestRecvFromClosedConn(t *testing.T) {
	a, _ := socketPair(t)
	a.Close()
	if _, _, err := Recv(a, make([]byte, 1), 1); err == nil {
		t.Error("Recv on a closed connection succeeded; want an error")
	}
}
