package main

import (
	"fmt"
	"strings"

	"github.com/brothaman/brothaman-go/pkg/annotation"
)

// portsFromFlags turns --listen [ip:]port[/proto] and --target port[/proto]
// flags into ports, pairing the Nth --listen with the Nth --target. Either
// alone works: a --listen alone dials the same port in the container, a
// --target alone listens on 127.0.0.1 and the same port. The result goes
// through the bro.activate grammar, so the errors are the hook's.
func portsFromFlags(listens, targets []string) ([]annotation.Port, error) {
	if len(listens) > 0 && len(targets) > 0 && len(listens) != len(targets) {
		return nil, fmt.Errorf("invalid flags: --listen given %d times and --target %d times; want them in pairs, or only one kind",
			len(listens), len(targets))
	}
	n := max(len(listens), len(targets))
	entries := make([]string, n)
	for i := range n {
		var listen, target string
		if i < len(listens) {
			listen = listens[i]
		}
		if i < len(targets) {
			target = targets[i]
		}
		entries[i] = entry(listen, target)
	}
	return annotation.ParsePorts(strings.Join(entries, ","))
}

// entry builds one bro.activate entry from a --listen and a --target value.
func entry(listen, target string) string {
	if listen == "" {
		return target
	}
	addr, proto, hasProto := strings.Cut(listen, "/")
	if t, p, ok := strings.Cut(target, "/"); ok && !hasProto {
		target, proto, hasProto = t, p, true
	}
	host, port := "", addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host, port = addr[:i+1], addr[i+1:]
	}
	if target == "" {
		target = port
	}
	e := host + port + ":" + target
	if hasProto {
		e += "/" + proto
	}
	return e
}
