// Package units renders the systemd units bro-activate and bro-generator
// write, one text/template per unit kind (templates/), and writes and removes
// them atomically.
//
// The unit text lives only in the templates, rendered from Activator and
// Direct values, and is golden-tested (go test -update rewrites testdata/).
// Every file carries a header naming its writer; Remove deletes only files
// with that header, so a unit the user wrote is never removed.
//
// Privileges: none beyond write access to the target unit directory
// (~/.config/systemd/user for a user, /etc/systemd/system for root, the
// generator's output directory). No goroutines, no namespaces.
package units
