package proxy

import (
	"context"
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
	args := []string{"start", "--no-block", u.unit}
	if os.Geteuid() != 0 {
		args = append([]string{"--user"}, args...)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
		if err != nil {
			repeatLog.log("start-failed", u.log.WithError(err).WithField("output", strings.TrimSpace(string(out))),
				logrus.WarnLevel, "cannot start "+u.unit)
			return
		}
		repeatLog.log("start", u.log.WithField("unit", u.unit), logrus.InfoLevel, "container not running: started its unit")
	}()
}
