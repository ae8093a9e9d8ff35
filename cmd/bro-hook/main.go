// Command bro-hook is the OCI hook that records containers carrying the
// bro.activate annotation, so that bro-proxy can find their network namespace.
//
//	bro-hook precreate                config.json on stdin, the config to create on stdout
//	bro-hook prestart|createRuntime   record the container (state on stdin)
//	bro-hook poststop                 remove its record
//
// Podman runs it from the hooks.d configuration (50-bro-activate-precreate.json,
// 50-bro-activate-prestart.json and 50-bro-activate-poststop.json, rendered
// from hooks.d/50-bro-activate.json.in). Precreate is Podman's own stage: it
// gives the hook the container's config.json and creates the container with
// what the hook writes back; bro-hook passes it through unchanged unless
// bro.mode=handoff, which gets the handoff seccomp filter (hook.Precreate).
// On failure it prints one line to stderr and exits 1; at precreate and
// prestart that stops the container from starting, which is what a malformed
// annotation must do. The runtime shows a prestart hook's stderr to the user;
// Podman drops a precreate hook's, so precreate sends the line to the journal
// too. Poststop always exits 0.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/brothaman/brothaman-go/internal/cli"
	"github.com/brothaman/brothaman-go/pkg/hook"
	"github.com/brothaman/brothaman-go/pkg/record"
	"github.com/coreos/go-systemd/v22/journal"
	"github.com/sirupsen/logrus"
)

func main() {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
	log.SetLevel(logrus.WarnLevel)
	if os.Getenv("BRO_HOOK_DEBUG") != "" {
		log.SetLevel(logrus.DebugLevel)
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, log))
}

const hookText = `The OCI hook of Brothaman-Go. Podman and the container runtime run it,
through the hooks.d files 50-bro-activate-{precreate,prestart,poststop}.json,
for every container with a bro.activate annotation. Precreate gets the container's
config.json on stdin and writes the config to create the container with on
stdout; the other stages get the container's OCI state on stdin:

  precreate                 bro.mode=handoff: the seccomp filter that sends
                            bind() and listen() (accept() too with Notify=true)
                            to the unit's agent; any other mode: unchanged
  prestart, createRuntime   record the container (id, name, unit, pid, netns, ports)
  poststop                  remove its record (never fails a stop)

Podman shows no precreate hook's stderr, only its exit status: a refusal at
precreate is in the journal too (journalctl -t bro-hook, or the unit's).

Set BRO_HOOK_DEBUG=1 in the hooks.d file's env for a log on stderr.`

const hookExamples = `# what Podman does before it creates a container:
bro-hook precreate < config.json > config.new.json
# what the runtime does at container creation:
bro-hook prestart < state.json`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, log *logrus.Logger) int {
	c := cli.New("bro-hook", "precreate|prestart|createRuntime|poststop", hookText, hookExamples)
	if err := c.Parse(args); errors.Is(err, cli.ErrDone) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "bro-hook: %v\n", err)
		return 2
	}
	args = c.Args()
	if len(args) != 1 {
		fmt.Fprintln(stderr, "bro-hook: usage: bro-hook precreate|prestart|createRuntime|poststop (config.json or OCI state on stdin)")
		return 2
	}
	switch args[0] {
	case "precreate":
		if err := precreate(stdin, stdout, log); err != nil {
			fmt.Fprintf(stderr, "bro-hook: %v\n", err)
			toJournal(err)
			return 1
		}
		return 0
	case "prestart", "createRuntime":
		if err := prestart(stdin, log); err != nil {
			fmt.Fprintf(stderr, "bro-hook: %v\n", err)
			return 1
		}
		return 0
	case "poststop":
		if err := poststop(stdin, log); err != nil {
			// A stop must never fail because of us: warn and succeed.
			fmt.Fprintf(stderr, "bro-hook: warning: %v\n", err)
		}
		return 0
	default:
		fmt.Fprintf(stderr, "bro-hook: unknown stage %q: want precreate, prestart, createRuntime or poststop\n", args[0])
		return 2
	}
}

// toJournal sends a precreate refusal to the journal too. Podman runs
// precreate hooks itself and, unlike the runtime with prestart hooks, drops
// their stderr (containers/common's RuntimeConfigFilter passes none): the
// user sees only "executing [bro-hook precreate]: exit status 1". Under
// quadlet the hook runs in NAME.service's cgroup, so the line is in the unit's
// journal next to Podman's error (journalctl --user -u NAME). BRO_HOOK_JOURNAL=0
// in the hooks.d env turns this off.
func toJournal(err error) {
	if os.Getenv("BRO_HOOK_JOURNAL") == "0" || !journal.Enabled() {
		return
	}
	_ = journal.Send(err.Error(), journal.PriErr, map[string]string{"SYSLOG_IDENTIFIER": "bro-hook"})
}

// precreate writes the config Podman creates the container with. The unit
// is the hook's own: Podman runs precreate hooks itself, and under quadlet
// Podman runs in NAME.service's cgroup.
func precreate(stdin io.Reader, stdout io.Writer, log *logrus.Logger) error {
	config, err := hook.ReadConfig(stdin)
	if err != nil {
		return err
	}
	unit := hook.SystemdUnit(os.Getpid())
	out, err := hook.Precreate(config, unit, record.StateDirPath)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("write container config: %w", err)
	}
	if !bytes.Equal(out, config) {
		log.WithField("unit", unit).Debug("wrote the handoff seccomp filter")
	}
	return nil
}

func prestart(stdin io.Reader, log *logrus.Logger) error {
	state, err := hook.ReadState(stdin)
	if err != nil {
		return err
	}
	uid, err := record.HostUID()
	if err != nil {
		return err
	}
	rec, err := hook.NewRecord(state, uid)
	if errors.Is(err, hook.ErrNoAnnotation) {
		log.WithField("container", state.ID).Debug("no bro.activate annotation, nothing to record")
		return nil
	}
	if err != nil {
		return err
	}
	path, err := record.StateDirPath()
	if err != nil {
		return err
	}
	dir, err := record.OpenStateDir(path, true)
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, id := range dir.RemoveStale() {
		log.WithField("container", id).Debug("removed stale record")
	}
	if err := dir.Write(rec); err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"container": rec.ID, "name": rec.Name, "unit": rec.Unit, "pid": rec.PID}).Debug("recorded")
	return nil
}

func poststop(stdin io.Reader, log *logrus.Logger) error {
	state, err := hook.ReadState(stdin)
	if err != nil {
		return err
	}
	path, err := record.StateDirPath()
	if err != nil {
		return err
	}
	dir, err := record.OpenStateDir(path, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing was ever recorded for this user
	}
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := dir.Remove(state.ID); err != nil {
		return err
	}
	log.WithField("container", state.ID).Debug("removed record")
	return nil
}
