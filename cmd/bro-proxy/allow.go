package main

import (
	"fmt"
	"os"

	"github.com/brothaman/brothaman-go/pkg/allow"
	"github.com/sirupsen/logrus"
)

// newGuard resolves --allow LIST for a proxy owned by the user it runs as,
// and opens the netlink sockets of its lookups. It runs before anything
// enters a namespace: sock_diag answers for the network namespace the
// sockets were opened in and reports uids as their user namespace sees them
// (the host's). nil without --allow: everyone may connect, at no cost.
func newGuard(value string, log *logrus.Entry) (*allow.Guard, error) {
	if value == "" {
		return nil, nil
	}
	l, err := allow.Parse(value)
	if err != nil {
		return nil, err
	}
	owner := uint32(os.Getuid())
	m, err := allow.Resolve(l, owner, allow.Files{})
	if err != nil {
		return nil, fmt.Errorf("--allow: %w", err)
	}
	for _, u := range m.Unresolved {
		// the others still apply: refusing everyone would punish them
		log.WithField("rule", m.Value).Warn("--allow: " + u + ": that entry admits no one")
	}
	g, err := allow.NewGuard(m)
	if err != nil {
		return nil, fmt.Errorf("--allow: %w (a unit's RestrictAddressFamilies= needs AF_NETLINK)", err)
	}
	log.WithFields(logrus.Fields{"rule": m.Value, "owner": owner}).Info("only the owner and the allow list may connect")
	return g, nil
}
