package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/ruletest"
)

const rulesUsage = `Usage:
  vigil rules check [DIR|FILE]         validate a rule directory or file (default: the embedded set)
  vigil rules test [--rules DIR] FILE...  run rule unit tests (YAML)
`

// runRules implements vigil rules check and vigil rules test.
func runRules(_ context.Context, s streams, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(s.stderr, rulesUsage)
		return 2
	}
	switch args[0] {
	case "check":
		return rulesCheck(s, args[1:])
	case "test":
		return rulesTest(s, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(s.stdout, rulesUsage)
		return 0
	}
	fmt.Fprintf(s.stderr, "vigil rules: unknown subcommand %q\n%s", args[0], rulesUsage)
	return 2
}

func rulesCheck(s streams, args []string) int {
	fs := flag.NewFlagSet("vigil rules check", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	if err := fs.Parse(args); err != nil {
		return exitForFlagErr(err)
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(s.stderr, "vigil rules check: give at most one directory or file\n%s", rulesUsage)
		return 2
	}
	dir := fs.Arg(0)
	rs, err := checkRules(dir)
	if err != nil {
		for _, e := range splitErrors(err) {
			fmt.Fprintf(s.stderr, "%v\n", e)
		}
		return 1
	}
	where := dir
	if where == "" {
		where = "the embedded rule set"
	}
	counts := map[detect.Kind]int{}
	for _, r := range rs {
		counts[r.Kind()]++
	}
	fmt.Fprintf(s.stdout, "ok: %d rules in %s:%s\n", len(rs), where, formatCounts(counts))
	return 0
}

// checkRules loads the rule directory dir like the daemon, or the single
// rule file dir names.
func checkRules(dir string) ([]*detect.Rule, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() && !isRuleTestFile(dir) {
		data, err := os.ReadFile(dir)
		if err != nil {
			return nil, err
		}
		return detect.ParseRules(dir, data)
	}
	return loadRules(dir, nil)
}

func rulesTest(s streams, args []string) int {
	fs := flag.NewFlagSet("vigil rules test", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	dir := fs.String("rules", "", "rules for tests that name no rule_files (default: the embedded set)")
	if err := fs.Parse(args); err != nil {
		return exitForFlagErr(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(s.stderr, "vigil rules test: name at least one test file\n%s", rulesUsage)
		return 2
	}
	rs, err := loadRules(*dir, nil)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil rules test: %v\n", err)
		return 1
	}
	r := ruletest.Runner{Rules: rs, Out: s.stdout, Load: func(l map[string]detect.ListSpec) ([]*detect.Rule, error) {
		return loadRules(*dir, l)
	}}
	var passed, failed, broken int
	for _, f := range fs.Args() {
		p, fl, err := r.RunFile(f)
		passed, failed = passed+p, failed+fl
		if err != nil {
			broken++
			fmt.Fprintf(s.stderr, "vigil rules test: %v\n", err)
		}
	}
	fmt.Fprintf(s.stdout, "%d passed, %d failed", passed, failed)
	if broken > 0 {
		fmt.Fprintf(s.stdout, ", %d files could not be run", broken)
	}
	fmt.Fprintln(s.stdout)
	if failed > 0 || broken > 0 {
		return 1
	}
	return 0
}

func exitForFlagErr(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// splitErrors unpacks errors.Join trees into their leaves.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
