// Package annotation is the grammar of the bro.activate annotation, the one
// thing a user writes to mark a container for activation:
// [[ip:]hostPort:]containerPort[/tcp|/udp], entries separated by commas or
// white space, as Podman's PublishPort=.
//
// It is pure Go (no cgo, no system calls) and shared by every side that
// reads or writes the value: bro-hook parses it from the OCI state,
// pkg/units renders socket units from it, bro-activate and its generator
// read it from a quadlet and write it back, and records store its parsed
// ports. A value that parses here is accepted by all of them; one that does
// not is refused with an *Error that names the value, the entry and the rule.
//
// Privileges: none. Caveat: Podman 4.3 cuts an --annotation value at its
// commas, so what goes into a quadlet is SpacedPorts, not FormatPorts.
package annotation
