// Package version holds the build's version, stamped by the Makefile with -X.
package version

// Version is set at build time; "dev" for plain go build.
var Version = "dev"
