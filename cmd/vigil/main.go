// Command vigil is the Vigil security event monitoring daemon and its tools.
// This package parses flags, handles signals and calls into the packages that
// do the work; it holds no business logic.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Set by the linker: -ldflags "-X main.version=v1.2.3 -X main.commit=abc".
var (
	version = "dev"
	commit  = ""
)

// streams are the standard streams a command writes to, so tests can capture them.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one vigil subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, s streams, args []string) int
}

func commands() []command {
	return []command{
		{"run", "run the daemon (embedded NATS unless nats.url is set)", runDaemon},
		{"simulate", "publish realistic traffic, optionally with attacks, to NATS", runSimulate},
		{"replay", "run the rules over files of events and print alert transitions", runReplay},
		{"backtest", "score the rules on recorded events against the truth about them", runBacktest},
		{"rules", "check rule files or run rule tests", runRules},
		{"config", "check or show the configuration", runConfig},
		{"deadletters", "list, show or count the rejected events and failed notifications Vigil keeps", runDeadletters},
		{"token", "make an admin API token", runToken},
		{"version", "print version and commit", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, streams{os.Stdin, os.Stdout, os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, s streams, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(s.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, s, args[1:])
		}
	}
	fmt.Fprintf(s.stderr, "vigil: unknown command %q; run 'vigil help' for the list\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: vigil <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'vigil <command> -h' for a command's flags.")
}

func runVersion(_ context.Context, s streams, _ []string) int {
	fmt.Fprintf(s.stdout, "vigil %s (commit %s)\n", version, buildCommit())
	return 0
}

// buildCommit returns the commit set by the linker, or the VCS revision the Go
// toolchain stamped into the binary.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}
