// Package cli is the one command-line layer of every Brothaman-Go program:
// GNU-style options through spf13/pflag (what Podman uses), -h/--help with
// examples on stdout, --version, systemd time spans for every duration, and
// bash, zsh and fish completion scripts generated from the same flag
// definitions, so that help, completion and parsing cannot drift apart.
//
// Pure Go, no privileges, no state beyond the Command value.
package cli
