package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/brothaman/brothaman-go/internal/version"
	"github.com/brothaman/brothaman-go/pkg/timespan"
	"github.com/spf13/pflag"
)

// ErrDone is returned by Parse after it handled --help, --version or
// --completion itself: the caller exits 0.
var ErrDone = errors.New("done")

// Command is one program's command line.
type Command struct {
	Name     string // program name as the user typed it: bro-proxy
	Synopsis string // "[OPTIONS] NAME", after the name on the usage line
	Text     string // what the program does, before the options
	Examples string // shown after the options, each line indented by two
	Flags    *pflag.FlagSet
	// Operands says how completion offers operands: "" (nothing),
	// "quadlets" (quadlet names in the caller's search path), "shells".
	Operands string
	// Subcommands (Sub) are offered as first words by completion.
	subs []*Command
	// Also are more programs whose completion goes in this program's
	// script (bro-activate-direct in bro-activate's).
	Also []*Command

	Stdout, Stderr io.Writer // nil: os.Stdout, os.Stderr

	help, version bool
	completion    string
}

// New returns a Command whose flag set already has -h/--help, --version and
// --completion=SHELL.
func New(name, synopsis, text, examples string) *Command {
	c := &Command{Name: name, Synopsis: synopsis, Text: text, Examples: examples}
	c.Flags = pflag.NewFlagSet(name, pflag.ContinueOnError)
	c.Flags.SortFlags = false
	c.Flags.SetOutput(io.Discard) // Parse reports errors itself, in one line
	c.Bool(&c.help, "help", "h", "show this help and exit")
	c.Bool(&c.version, "version", "", "print the version and exit")
	c.Flags.StringVar(&c.completion, "completion", "", "print a completion script for `SHELL` (bash, zsh or fish) and exit")
	c.Complete("completion", "bash zsh fish")
	return c
}

func (c *Command) stdout() io.Writer {
	if c.Stdout == nil {
		return os.Stdout
	}
	return c.Stdout
}

// Parse parses args. Options and operands mix in any order ("NAME --force");
// "--" ends the options. After --help, --version or --completion it prints
// what was asked on stdout and returns ErrDone. A bad option returns an
// error that names it and ends with a hint at --help.
func (c *Command) Parse(args []string) error {
	if err := c.Flags.Parse(args); err != nil {
		return fmt.Errorf("%w (see %s --help)", err, c.Name)
	}
	switch {
	case c.help:
		c.PrintHelp(c.stdout())
		return ErrDone
	case c.version:
		fmt.Fprintln(c.stdout(), c.Name, version.Version)
		return ErrDone
	case c.completion != "":
		if err := c.WriteCompletion(c.stdout(), c.completion); err != nil {
			return err
		}
		return ErrDone
	}
	return nil
}

// Args returns the operands left after Parse.
func (c *Command) Args() []string { return c.Flags.Args() }

// PrintHelp writes the usage line, the text, the options and the examples.
func (c *Command) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\n", c.Name, c.Synopsis)
	if c.Text != "" {
		fmt.Fprintln(w, strings.TrimRight(c.Text, "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Options:")
	fmt.Fprint(w, c.Flags.FlagUsagesWrapped(100))
	if c.Examples != "" {
		fmt.Fprintln(w, "\nExamples:")
		for _, l := range strings.Split(strings.TrimRight(c.Examples, "\n"), "\n") {
			if l == "" {
				fmt.Fprintln(w)
				continue
			}
			fmt.Fprintln(w, "  "+l)
		}
	}
	fmt.Fprintf(w, "\nSee %s(1) and brothaman(7).\n", manPage(c.Name))
}

// manPage is the page that documents name: bro-activate(1) covers
// bro-activate-direct and the generator.
func manPage(name string) string {
	name, _, _ = strings.Cut(name, " ")
	switch name {
	case "bro-activate-direct", "bro-generator":
		return "bro-activate"
	}
	return name
}

// durationValue is a pflag.Value for systemd time spans.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return timespan.Format(*v.d)
}

func (v durationValue) Set(s string) error {
	d, err := timespan.Parse(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v durationValue) Type() string { return "TIME" }

// Duration defines a time-span option: "5min", "1h 30s", "500ms", "90" (s).
// Its default is value; usage should not repeat it.
func (c *Command) Duration(p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	c.Flags.Var(durationValue{p}, name, usage)
}

// listValue collects every occurrence of a repeatable option.
type listValue struct{ values *[]string }

func (l listValue) String() string     { return strings.Join(*l.values, ",") }
func (l listValue) Set(v string) error { *l.values = append(*l.values, v); return nil }
func (l listValue) Type() string       { return "string" }

// List defines a repeatable option whose values are kept in order (commas
// are not split: a value may contain one).
func (c *Command) List(p *[]string, name, short, usage string) {
	c.Flags.VarP(listValue{p}, name, short, usage)
}

// switchValue is a boolean option shown as "--force", not pflag's
// "--force[=true|false]"; "--force=false" still works.
type switchValue struct{ b *bool }

func (v switchValue) String() string { return strconv.FormatBool(*v.b) }
func (v switchValue) Type() string   { return "bool" }
func (v switchValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*v.b = b
	return nil
}

// Bool defines an option without a value (default false).
func (c *Command) Bool(p *bool, name, short, usage string) {
	c.Flags.VarP(switchValue{p}, name, short, usage)
	c.Flags.Lookup(name).NoOptDefVal = "true"
}
