//go:build !cgo

package nsenter

// Without cgo the constructor is silently left out (a .c file of a package
// without cgo files is ignored), and every namespace helper the binary starts
// would be refused at run time. Refuse the build instead.
var _ = building_nsenter_needs_cgo_set_CGO_ENABLED_1
