package ns

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ioctl requests on nsfs descriptors (linux/nsfs.h).
const (
	nsGetUserNS   = 0xb701 // _IO(0xb7, 0x1)
	nsGetOwnerUID = 0xb704 // _IO(0xb7, 0x4)
)

// Handle is an open namespace file, identified by the device and inode of nsfs.
type Handle struct {
	f   *os.File
	Dev uint64
	Ino uint64
}

// Open opens a namespace file such as /proc/PID/ns/net or /run/netns/NAME.
// It returns an error if path is not on nsfs.
func Open(path string) (*Handle, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", path, err)
	}
	h, err := fromFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("namespace %s: %w", path, err)
	}
	return h, nil
}

func fromFile(f *os.File) (*Handle, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return nil, fmt.Errorf("statfs: %w", err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return nil, errors.New("not a namespace file (not on nsfs)")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	return &Handle{f: f, Dev: st.Dev, Ino: st.Ino}, nil
}

// OpenNetNSOfPID opens /proc/PID/ns/net.
func OpenNetNSOfPID(pid int) (*Handle, error) {
	return Open(fmt.Sprintf("/proc/%d/ns/net", pid))
}

// Fd is the namespace descriptor; it stays valid until Close.
func (h *Handle) Fd() int { return int(h.f.Fd()) }

// File is the namespace file, for passing to a child.
func (h *Handle) File() *os.File { return h.f }

// Close releases the descriptor.
func (h *Handle) Close() error { return h.f.Close() }

// Equal reports whether both handles name the same namespace.
func (h *Handle) Equal(o *Handle) bool { return h.Dev == o.Dev && h.Ino == o.Ino }

// Is reports whether h is the namespace with the given device and inode.
func (h *Handle) Is(dev, ino uint64) bool { return h.Dev == dev && h.Ino == ino }

func (h *Handle) String() string { return fmt.Sprintf("ns:[%d]", h.Ino) }

// Owner opens the user namespace that owns h (NS_GET_USERNS).
func (h *Handle) Owner() (*Handle, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, h.f.Fd(), nsGetUserNS, 0)
	if errno != 0 {
		return nil, fmt.Errorf("get owning user namespace of %s: %w", h, errno)
	}
	f := os.NewFile(fd, "userns")
	unix.CloseOnExec(int(fd))
	o, err := fromFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return o, nil
}

// OwnerUID is the uid that created the user namespace h (NS_GET_OWNER_UID),
// as seen from the caller's user namespace.
func (h *Handle) OwnerUID() (int, error) {
	var uid uint32
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, h.f.Fd(), nsGetOwnerUID, uintptrOf(&uid))
	if errno != 0 {
		return -1, fmt.Errorf("get owner of user namespace %s: %w", h, errno)
	}
	return int(uid), nil
}
