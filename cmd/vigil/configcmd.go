package main

import (
	"context"
	"flag"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/rules"
)

// runConfig implements `vigil config check|show`.
func runConfig(_ context.Context, s streams, args []string) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "show") {
		fmt.Fprintln(s.stderr, "Usage: vigil config check|show [--config FILE] [run flags]\n\n"+
			"  check  validate the config (and flags) exactly as `vigil run` would; exit 1 on any problem\n"+
			"  show   print the effective config with defaults filled in; secrets print as <secret>")
		return 2
	}
	fs := flag.NewFlagSet("vigil config "+args[0], flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f daemonFlags
	f.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, _, err := f.load()
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil config %s: %v\n", args[0], err)
		return 1
	}
	if args[0] == "check" {
		rs, err := rules.Load(cfg.Detect.Rules)
		if err != nil {
			fmt.Fprintf(s.stderr, "vigil config check: %v\n", err)
			return 1
		}
		fmt.Fprintf(s.stdout, "config ok: %d rules, %d receivers, %d routes\n", len(rs), len(cfg.Notify.Receivers), len(cfg.Notify.Routes))
		return 0
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil config show: %v\n", err)
		return 1
	}
	_, _ = s.stdout.Write(out)
	return 0
}
