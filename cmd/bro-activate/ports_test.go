package main

import (
	"testing"

	"github.com/brothaman/brothaman-go/pkg/annotation"
)

func TestPortsFromFlags(t *testing.T) {
	tests := []struct {
		name             string
		listens, targets []string
		want             string
	}{
		{"target only", nil, []string{"5432"}, "127.0.0.1:5432:5432/tcp"},
		{"listen only", []string{"127.0.0.2:8080"}, nil, "127.0.0.2:8080:8080/tcp"},
		{"pair", []string{"15432"}, []string{"5432"}, "127.0.0.1:15432:5432/tcp"},
		{"ipv6 udp", []string{"[::1]:5353/udp"}, []string{"53"}, "[::1]:5353:53/udp"},
		{"proto on target", []string{"5353"}, []string{"53/udp"}, "127.0.0.1:5353:53/udp"},
		{"two pairs", []string{"1", "2"}, []string{"10", "20"}, "127.0.0.1:1:10/tcp,127.0.0.1:2:20/tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := portsFromFlags(tt.listens, tt.targets)
			if err != nil {
				t.Fatal(err)
			}
			if got := annotation.FormatPorts(p); got != tt.want {
				t.Errorf("portsFromFlags(%q, %q) = %q; want %q", tt.listens, tt.targets, got, tt.want)
			}
		})
	}
}

func TestPortsFromFlagsErrors(t *testing.T) {
	tests := []struct {
		name             string
		listens, targets []string
		want             string
	}{
		{"unpaired", []string{"1", "2"}, []string{"3"},
			"invalid flags: --listen given 2 times and --target 1 times; want them in pairs, or only one kind"},
		{"bad port", nil, []string{"http"},
			`invalid bro.activate="http": container port "http" is not a number; want ` + annotation.PortRule},
		{"bad proto", []string{"80/sctp"}, nil,
			`invalid bro.activate="80:80/sctp": protocol "sctp" is not tcp or udp; want ` + annotation.PortRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := portsFromFlags(tt.listens, tt.targets)
			if err == nil || err.Error() != tt.want {
				t.Errorf("portsFromFlags error = %v; want %q", err, tt.want)
			}
		})
	}
}
