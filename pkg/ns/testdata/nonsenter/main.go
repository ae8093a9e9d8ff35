// Command nonsenter is a main that starts namespace helpers but does not
// link package nsenter: TestHelperWithoutConstructorIsRefused builds it and
// expects Enter to refuse the helper it starts, never to use it.
//
//	nonsenter /proc/PID/ns/net
package main

import (
	"fmt"
	"os"

	"github.com/brothaman/brothaman-go/pkg/ns"
)

func main() {
	if ns.IsHelper() {
		ns.RunHelper() // never returns
	}
	h, err := ns.Open(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	s, err := ns.Enter(h)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	s.Close()
	fmt.Println("entered")
}
