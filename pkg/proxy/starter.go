package proxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// unitStarter asks the service manager to start the container's unit when
// a client waits for a container that is not running: after a crash, a
// `podman stop`, or an idle stop that raced a new client. The activator's
// Wants= starts the unit only when the activator itself starts.
type unitStarter struct {
	unit string
	log  *logrus.Entry

	mu   sync.Mutex
	last time.Time
}

// minKickInterval bounds how often a missing container triggers a start.
const minKickInterval = 2 * time.Second

// kick runs `systemctl [--user] start --no-block UNIT` in the background,
// at most once every minKickInterval. --no-block: a start job is queued and
// the client waits for the container's record as usual.
func (u *unitStarter) kick() {
	if u == nil || u.unit == "" {
		return
	}
	u.mu.Lock()
	if time.Since(u.last) < minKickInterval {
		u.mu.Unlock()
		return
	}
	u.last = time.Now()
	u.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := StartUnit(ctx, u.unit, false); err != nil {
			repeatLog.log("start-failed", u.log.WithError(err), logrus.WarnLevel, "cannot start "+u.unit)
			return
		}
		repeatLog.log("start", u.log.WithField("unit", u.unit), logrus.InfoLevel, "container not running: started its unit")
	}()
}

// StartUnit asks this user's service manager (the system's, for root) to
// start unit: `systemctl [--user] start [--no-block] UNIT`. With wait it
// returns when the start job has ended: for a Type=notify unit (quadlet
// Notify=true) once the service has said READY=1. The error carries
// systemctl's own words.
func StartUnit(ctx context.Context, unit string, wait bool) error {
	args := []string{"start", unit}
	if !wait {
		args = []string{"start", "--no-block", unit}
	}
	if os.Geteuid() != 0 {
		args = append([]string{"--user"}, args...)
	}
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
