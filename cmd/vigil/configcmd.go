package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/config"
)

// runConfig implements `vigil config check|show`.
func runConfig(_ context.Context, s streams, args []string) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "show") {
		fmt.Fprintln(s.stderr, "Usage: vigil config check|show [--config FILE] [run flags]\n\n"+
			"  check  make every check `vigil run` makes before it starts (files, addresses, rules); exit 1 on any problem\n"+
			"  show   print the effective config with defaults filled in; secrets print as <secret>, unset keys as # unset")
		return 2
	}
	fs := flag.NewFlagSet("vigil config "+args[0], flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f daemonFlags
	f.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if args[0] == "check" {
		c, err := f.check()
		if err != nil {
			fmt.Fprintf(s.stderr, "vigil config check: %v\n", err)
			return 1
		}
		for _, w := range c.warnings {
			fmt.Fprintf(s.stderr, "warning: %s\n", w)
		}
		// The daemon logs these itself, at start and at each reload.
		for _, w := range c.cfg.Ingest.Deprecations() {
			fmt.Fprintf(s.stderr, "warning: %s: %s\n", f.configPath, w)
		}
		fmt.Fprintf(s.stdout, "config ok: %d rules, %d receivers, %d routes\n", len(c.rules), len(c.cfg.Notify.Receivers), len(c.cfg.Notify.Routes))
		return 0
	}
	cfg, _, err := f.read()
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil config show: %v\n", err)
		return 1
	}
	out, err := showConfig(cfg)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil config show: %v\n", err)
		return 1
	}
	_, _ = s.stdout.Write(out)
	return 0
}

// unsetMeans says what leaving a key empty does, where that is not "none".
var unsetMeans = map[string]string{
	"nats.url":              "the embedded NATS server",
	"detect.rules":          "the built-in rules",
	"admin.tls.min_version": "1.2",
	"admin.tokens":          "the API refuses every call",
}

// shortDuration writes a duration as it would be written by hand: "72h"
// rather than "72h0m0s". Other values are returned unchanged.
func shortDuration(v string) string {
	if _, err := time.ParseDuration(v); err != nil || !strings.HasSuffix(v, "0s") {
		return v
	}
	if s, ok := strings.CutSuffix(v, "m0s"); ok && !strings.HasSuffix(s, "h0") {
		return s + "m"
	}
	if s, ok := strings.CutSuffix(v, "h0m0s"); ok {
		return s + "h"
	}
	return v
}

// showConfig renders cfg as YAML in which an empty value reads "# unset"
// (with what that means, where it is not obvious) rather than "" or a
// redacted secret that is not there.
func showConfig(cfg config.Config) ([]byte, error) {
	// Marshalled and parsed again rather than Node.Encode, which drops the
	// comments saying where each secret came from.
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	markUnset(&doc, "")
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func markUnset(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			markUnset(c, key)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if key != "" {
				k = key + "." + k
			}
			markUnset(n.Content[i+1], k)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			markUnset(c, key+"[]")
		}
		if len(n.Content) == 0 {
			if m, ok := unsetMeans[key]; ok {
				n.LineComment = "none: " + m
			}
		}
	case yaml.ScalarNode:
		n.Value = shortDuration(n.Value)
		if n.Tag == "!!str" && n.Value == "" {
			n.Tag, n.Style, n.LineComment = "!!null", 0, "unset"
			if m, ok := unsetMeans[key]; ok {
				n.LineComment += ": " + m
			}
		}
	}
}
