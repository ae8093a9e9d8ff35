package nsenter

// #cgo CFLAGS: -Wall
import "C"

// The constructor in nsenter_linux.c does the work; importing "C" is what
// compiles and links it into the binary whose main imports this package.
