package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestRouteWarningsReachCheckRunAndReload: a route that no loaded rule can
// match (a misspelt rule name) is valid but warned about by config check,
// in run's log at start, and in the log of each reload; config check also
// names a deprecated key spelling, with the file and line.
func TestRouteWarningsReachCheckRunAndReload(t *testing.T) {
	dir := t.TempDir()
	cfg := testfiles.Write(t, dir, "vigil.yaml", "receivers:\n  - name: console\n    log: {}\n"+
		"routes:\n  - receivers: [console]\n    match: {rule: brute_force_ip}\n  - receivers: [console]\n"+
		"ingest:\n  deadletter_max_age: 720h\n")
	const lint = "routes[0].match.rule: no loaded rule has that name"
	flags := []string{"--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--nats-listen", "127.0.0.1:-1", "--listen", "127.0.0.1:0"}

	t.Run("config check", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := runConfig(context.Background(), streams{stdout: &out, stderr: &errb}, append([]string{"check"}, flags...))
		deprecated := "warning: " + cfg + ": line 9: ingest.deadletter_max_age is deprecated; rename it to ingest.dead_letter_max_age\n"
		if code != 0 || !strings.Contains(errb.String(), "warning: "+lint) || !strings.Contains(errb.String(), deprecated) {
			t.Fatalf("code %d, stderr %q; want 0, the route warning and %q", code, errb.String(), deprecated)
		}
	})
	t.Run("run at start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // start, then stop at once
		var out, errb testkit.SyncBuffer
		runDaemon(ctx, streams{stdout: &out, stderr: &errb}, flags)
		if !loggedWarning(t, errb.String(), lint) {
			t.Fatalf("run did not log the route warning; log:\n%s", errb.String())
		}
	})
	t.Run("reload", func(t *testing.T) {
		var f daemonFlags
		fs := flag.NewFlagSet("vigil run", flag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(flags); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		// The daemon's Options.Load, which Reload calls.
		if _, _, err := f.load(slog.New(slog.NewJSONHandler(&logs, nil)))(); err != nil {
			t.Fatalf("load: %v", err)
		}
		if !loggedWarning(t, logs.String(), lint) {
			t.Fatalf("reload did not log the route warning; log:\n%s", logs.String())
		}
	})
}

// loggedWarning reports whether the JSON log holds a "config warning" whose
// problem contains want.
func loggedWarning(t *testing.T, log, want string) bool {
	t.Helper()
	for line := range strings.Lines(log) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if rec["level"] == "WARN" && rec["msg"] == "config warning" && strings.Contains(fmt.Sprint(rec["problem"]), want) {
			return true
		}
	}
	return false
}
