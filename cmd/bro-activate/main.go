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
		case "completion":
			os.Exit(runCompletion(args[1:]))
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

// runCompletion is `bro-activate completion SHELL`, the same as
// `bro-activate --completion SHELL`.
func runCompletion(args []string) int {
	if len(args) != 1 {
		return fail("bro-activate completion", fmt.Errorf("want one SHELL (bash, zsh or fish), got %d arguments", len(args)))
	}
	return runActivate([]string{"--completion", args[0]}, false)
}
