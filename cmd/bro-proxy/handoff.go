package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/fdpass"
	"github.com/brothaman/brothaman-go/pkg/handoff"
	"github.com/brothaman/brothaman-go/pkg/proxy"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// AgentSocketName is FileDescriptorName= of the socket at the containers'
// listenerPath, where runc sends each container's seccomp listener.
const AgentSocketName = "seccomp"

// runHandoff is bro-proxy --handoff: the agent of the handoff mode. It holds
// the host sockets and gives them to the bind() of the containers of
// --start-unit through their seccomp listeners; it relays nothing.
func runHandoff(o *options, log *logrus.Entry) error {
	fds, err := fdpass.Listen()
	if err != nil {
		return err
	}
	var agentLn *net.UnixListener
	var stored, placeholders []fdpass.Inherited
	var host []int
	for _, f := range fds {
		switch {
		case f.Name == AgentSocketName && agentLn == nil:
			ln, err := net.FileListener(f.File)
			f.File.Close()
			if err != nil {
				return fmt.Errorf("inherited socket %q: %w", f.Name, err)
			}
			ul, ok := ln.(*net.UnixListener)
			if !ok {
				ln.Close()
				return fmt.Errorf("inherited socket %q is %s, want a unix stream socket (ListenStream=PATH)", f.Name, ln.Addr().Network())
			}
			agentLn = ul
		case strings.HasPrefix(f.Name, handoff.StoredPrefix):
			stored = append(stored, f)
		case strings.HasPrefix(f.Name, handoff.PlaceholderPrefix):
			placeholders = append(placeholders, f)
		default:
			host = append(host, int(f.File.Fd()))
		}
	}
	if agentLn == nil {
		return fmt.Errorf("no inherited socket named %q (FileDescriptorName=%s on the socket at the containers' listenerPath)", AgentSocketName, AgentSocketName)
	}
	table, err := handoff.NewTable(host...)
	if err != nil {
		return err
	}
	for _, s := range table.Sockets() {
		log.WithFields(logrus.Fields{"fd": s.FD, "port": s.Port}).Info("holding a host socket for the container's bind()")
	}
	drop := func(name string) { daemon.SdNotify(false, "FDSTOREREMOVE=1\nFDNAME="+name) }
	table.Store, table.Drop = handoff.StoreFD, drop
	for _, f := range placeholders {
		fd, err := dupOwn(f.File)
		if err == nil && !table.Adopt(f.Name, fd) {
			syscall.Close(fd)
			drop(f.Name)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	h := &handoff.Handler{Table: table, Log: log}
	a := &handoff.Agent{Handler: h, Unit: o.startUnit, Log: log, Store: handoff.StoreFD, Drop: drop}
	if o.waitReady {
		r := &readiness{unit: o.startUnit, log: log, wake: table.Wake}
		h.Ready = r.ready
		a.NewContainer = func(int) { r.wait(ctx) }
		r.wait(ctx) // the container of a restarted agent, or the first one
	}
	for _, f := range stored {
		fd, err := dupOwn(f.File)
		if err != nil {
			log.WithError(err).WithField("name", f.Name).Warn("cannot serve a stored seccomp listener")
			continue
		}
		a.Resume(ctx, f.Name, fd)
	}
	if o.exitIdle > 0 {
		go table.IdleWatch(o.exitIdle, ctx.Done(), func() {
			log.WithField("idle", o.exitIdle).Info("no connection for the idle time: exiting, so that the container stops too")
			stop()
		}, func(err error) { log.WithError(err).Warn("cannot count the host sockets' connections; not idle") })
	}
	daemon.SdNotify(false, fmt.Sprintf("READY=1\nSTATUS=handing %d host sockets to %s", len(host), o.startUnit))
	err = a.Serve(ctx, agentLn)
	daemon.SdNotify(false, "STOPPING=1")
	return err
}

// dupOwn takes the descriptor out of f, which then no longer closes it.
func dupOwn(f *os.File) (int, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	syscall.CloseOnExec(fd)
	return fd, nil
}

// readiness holds the host sockets' clients back from the server until the
// unit is active: `systemctl start UNIT` returns once a Type=notify unit
// (quadlet Notify=true) has said READY=1, having started it first if it was
// not running; then wake lets the server at them. Each new container
// closes the gate again.
type readiness struct {
	unit string
	log  *logrus.Entry
	wake func() error

	mu       sync.Mutex
	ok       bool
	inflight bool // a systemctl start runs; it returns when the unit is active
}

func (r *readiness) ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok
}

func (r *readiness) wait(ctx context.Context) {
	r.mu.Lock()
	r.ok = false
	if r.inflight {
		r.mu.Unlock()
		return
	}
	r.inflight = true
	r.mu.Unlock()
	go func() {
		err := proxy.StartUnit(ctx, r.unit, true)
		r.mu.Lock()
		r.inflight = false
		r.mu.Unlock()
		if err != nil {
			if !errors.Is(ctx.Err(), context.Canceled) {
				r.log.WithError(err).Warn("cannot start " + r.unit + "; clients wait in the host socket")
			}
			return
		}
		r.mu.Lock()
		r.ok = true // the unit is active now, whichever container asked
		r.mu.Unlock()
		if err := r.wake(); err != nil {
			r.log.WithError(err).Warn("the server may wait for its next accept() to get the host socket")
		}
		r.log.WithField("unit", r.unit).Info("unit is ready: the server may accept clients")
	}()
}

// handoffFlags checks the options of --handoff: the agent needs its unit and
// takes no target, backend or relay option.
func handoffFlags(o *options, c *cli.Command) error {
	if !o.handoff {
		return errors.New("--wait-ready needs --handoff")
	}
	if o.startUnit == "" || !strings.HasSuffix(o.startUnit, ".service") {
		return fmt.Errorf("--handoff needs --start-unit NAME.service (the unit whose containers get the host sockets), got %q", o.startUnit)
	}
	if c.Flags.NArg() > 0 || !o.targets.Empty() || o.container != "" || o.pid != 0 || o.netns != "" || c.Flags.Changed("proxy-protocol") {
		return errors.New("--handoff relays nothing: no TARGET, --target, --container, --pid, --netns or --proxy-protocol")
	}
	return nil
}
