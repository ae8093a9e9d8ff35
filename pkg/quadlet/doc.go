// Package quadlet reads Podman quadlet files (NAME.container) the way Podman's
// quadlet generator does, far enough for bro-activate: sections, repeated keys,
// comments, continuation lines, drop-ins, quadlet's search paths, and the
// Annotation= key-value syntax. It also adds the bro.activate annotation to a
// quadlet, atomically, and removes exactly what it added.
//
// It needs no privileges beyond reading the search directories; a rootless
// user reads its own directories and the world-readable /etc ones. Files are
// bounded (MaxFileSize) so a generator run at every daemon-reload cannot be
// made to read without end. Pure Go, no goroutines or namespaces.
package quadlet
