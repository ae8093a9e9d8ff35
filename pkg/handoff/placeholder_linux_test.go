package handoff

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestPlaceholderAdopt: a placeholder kept in the store under its name is
// recognised by a new Table (an agent restarted between a server's bind and
// its readiness); names of other ports or kinds are left to the caller.
func TestPlaceholderAdopt(t *testing.T) {
	h := listenHost(t, "tcp4")
	first, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	first.Store = func(name string, fd int) error { stored[name] = fd; return nil }
	s := first.lookup(uint16(h.port), unix.SOCK_STREAM)
	p, err := first.newPlaceholder(s, true)
	if err != nil {
		t.Fatal(err)
	}
	first.setPlaceholder(s, p)
	if len(stored) != 1 {
		t.Fatalf("stored %v; want the placeholder", stored)
	}
	var name string
	for n := range stored {
		name = n
	}
	dup, err := unix.Dup(p.fd)
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewTable(h.fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"seccomp-abc-1", PlaceholderPrefix + "1-1", PlaceholderPrefix + "x"} {
		if second.Adopt(other, dup) {
			t.Errorf("Adopt(%q) = true; want false", other)
		}
	}
	if !second.Adopt(name, dup) {
		t.Fatalf("Adopt(%q) = false; want true", name)
	}
	if !second.pending() {
		t.Error("no placeholder pending after Adopt")
	}
	if got, _ := second.placeholderOf(p.dev, p.ino); got == nil || got.Port != uint16(h.port) {
		t.Errorf("placeholderOf the adopted socket: %v; want the host socket of port %d", got, h.port)
	}
	dropped := ""
	second.Drop = func(n string) { dropped = n }
	second.mu.Lock()
	second.dropLocked(second.lookup(uint16(h.port), unix.SOCK_STREAM))
	second.mu.Unlock()
	if dropped != name || second.pending() {
		t.Errorf("after the swap: dropped %q, pending %v; want %q dropped, none pending", dropped, second.pending(), name)
	}
	first.mu.Lock()
	first.dropLocked(s)
	first.mu.Unlock()
}
