package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/brothaman/brothaman-go/pkg/annotation"
	"github.com/brothaman/brothaman-go/pkg/fdpass"
)

// StoredPrefix starts the names under which an Agent keeps the seccomp
// listeners it serves in systemd's file descriptor store; a restarted agent
// finds them in $LISTEN_FDNAMES.
const StoredPrefix = "seccomp-"

// Agent receives the seccomp listeners that runc sends to the socket at a
// container's listenerPath (one per container start and one per podman exec,
// each with the OCI state) and serves each with Handler in a goroutine of its
// own.
//
// A listener is taken only from a peer running as the agent's own user
// (SO_PEERCRED: runc of the user's rootless Podman), with Metadata(Unit) as
// its metadata and the bro.mode=handoff annotation; anything else is closed
// and logged.
type Agent struct {
	Handler *Handler
	Unit    string // NAME.service, whose containers this agent serves
	Log     *logrus.Entry

	// Store, when set, is given each listener taken and the name it is
	// served under, to keep a copy in systemd's file descriptor store; Drop
	// when its processes have all exited. Either may be called from any
	// goroutine.
	Store func(name string, fd int) error
	Drop  func(name string)
	// NewContainer, when set, is called with the pid of a container's first
	// process whenever a listener arrives for a container not seen before
	// (a first start, a restart), before the listener is served.
	NewContainer func(pid int)

	mu      sync.Mutex
	seq     int
	lastPID int
	wg      sync.WaitGroup
}

// Serve accepts runc's connections on ln until ctx is done, then waits for
// the listeners being served to end (they end with ctx too). It owns ln.
func (a *Agent) Serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer a.wg.Wait()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on the seccomp agent socket: %w", err)
		}
		if err := a.take(ctx, c); err != nil {
			a.Log.WithError(err).Warn("refused a seccomp listener")
		}
	}
}

// Resume serves a listener kept in the file descriptor store by an earlier
// run of the agent (fd inherited from systemd under name).
func (a *Agent) Resume(ctx context.Context, name string, fd int) {
	a.Log.WithField("name", name).Info("serving a seccomp listener kept in the file descriptor store")
	a.serve(ctx, name, fd)
}

// take reads one message from runc: the OCI state and the listener.
func (a *Agent) take(ctx context.Context, c *net.UnixConn) error {
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("read the peer's credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("peer pid %d runs as uid %d, not as this agent's uid %d", cred.Pid, cred.Uid, os.Geteuid())
	}
	// runc writes the state and the descriptors in one message as soon as
	// it is connected; a peer that sends nothing does not hold the agent.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256<<10)
	n, fds, err := fdpass.Recv(c, buf, 4)
	if err != nil {
		return fmt.Errorf("read the container's state: %w", err)
	}
	keep := -1
	defer func() {
		for _, fd := range fds {
			if fd != keep {
				unix.Close(fd)
			}
		}
	}()
	var st specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		return fmt.Errorf("decode the container's state (%d bytes): %w", n, err)
	}
	log := a.Log.WithFields(logrus.Fields{"container": shortID(st.State.ID), "pid": st.Pid})
	if want := Metadata(a.Unit); st.Metadata != want {
		return fmt.Errorf("container %s: metadata %q, want %q: not a container of %s", shortID(st.State.ID), st.Metadata, want, a.Unit)
	}
	if m := st.State.Annotations[annotation.ModeKey]; m != annotation.ModeHandoff {
		return fmt.Errorf("container %s: %s=%q, want %s", shortID(st.State.ID), annotation.ModeKey, m, annotation.ModeHandoff)
	}
	idx := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName {
			idx = i
		}
	}
	if idx < 0 || idx >= len(fds) {
		return fmt.Errorf("container %s: no %s among the %d descriptors sent (names %v)", shortID(st.State.ID), specs.SeccompFdName, len(fds), st.Fds)
	}
	keep = fds[idx]
	a.mu.Lock()
	a.seq++
	name := StoredPrefix + shortID(st.State.ID) + "-" + strconv.Itoa(a.seq)
	newContainer := st.State.Pid != a.lastPID
	a.lastPID = st.State.Pid
	a.mu.Unlock()
	if newContainer && a.NewContainer != nil {
		a.NewContainer(st.State.Pid)
	}
	if a.Store != nil {
		if err := a.Store(name, keep); err != nil {
			log.WithError(err).Warn("cannot keep the seccomp listener in the file descriptor store; an agent restart will lose it")
		}
	}
	log.WithField("name", name).Info("serving the container's seccomp listener")
	a.serve(ctx, name, keep)
	return nil
}

func (a *Agent) serve(ctx context.Context, name string, fd int) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.Handler.Serve(ctx, fd)
		log := a.Log.WithField("name", name)
		switch {
		case err == nil:
			log.Info("every process under the seccomp listener has exited")
			if a.Drop != nil {
				a.Drop(name)
			}
		case ctx.Err() != nil:
		default:
			log.WithError(err).Warn("seccomp listener failed")
			if a.Drop != nil {
				a.Drop(name)
			}
		}
	}()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// fdNameRE is what systemd accepts as FDNAME=.
var fdNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,255}$`)

// StoreFD sends fd to the service manager's file descriptor store under
// name (sd_pid_notify_with_fds "FDSTORE=1"). The unit needs
// FileDescriptorStoreMax=. go-systemd's daemon package sends no descriptors.
func StoreFD(name string, fd int) error {
	if !fdNameRE.MatchString(name) {
		return fmt.Errorf("file descriptor name %q: want 1-255 of A-Z a-z 0-9 _ . -", name)
	}
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return errors.New("no $NOTIFY_SOCKET: not run by systemd with Type=notify")
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:]
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	defer unix.Close(s)
	msg := []byte("FDSTORE=1\nFDNAME=" + name)
	if err := unix.Sendmsg(s, msg, unix.UnixRights(fd), &unix.SockaddrUnix{Name: sock}, 0); err != nil {
		return fmt.Errorf("send FDSTORE=1 to %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}
