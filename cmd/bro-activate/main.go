package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name != "bro-generator" && name != "bro-activate-direct" && len(args) > 0 {
		switch args[0] {
		case "direct":
			name, args = "bro-activate-direct", args[1:]
		case "generator":
			name, args = "bro-generator", args[1:]
		case "status":
			os.Exit(runStatus(args[1:], os.Stdout, os.Stderr))
		}
	}
	switch name {
	case "bro-generator":
		os.Exit(runGenerator(os.Args[0], args))
	case "bro-activate-direct":
		os.Exit(runActivate(args, true))
	default:
		os.Exit(runActivate(args, false))
	}
}

// fail prints one error line the way every command here does.
func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
	return 1
}
