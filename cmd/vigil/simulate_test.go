package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect/backtest"
	"github.com/vigil-sec/vigil/simulate"
)

func runSimulateArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	code := runSimulate(context.Background(), streams{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr}, args)
	return code, stderr.String()
}

// TestSimulateScenarioWritesEventsAndTruth runs scenario mode: by default
// every attack and benign pattern, events gzip-compressed by the name.
func TestSimulateScenarioWritesEventsAndTruth(t *testing.T) {
	dir := t.TempDir()
	events, truth := filepath.Join(dir, "s.jsonl.gz"), filepath.Join(dir, "t.json")
	code, out := runSimulateArgs(t, "--scenario", events, "--truth", truth, "--duration", "4m", "--rate", "20", "--users", "2000", "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := backtest.ReadTruth(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Incidents) != len(simulate.Attacks()) || len(tr.Benign) < len(simulate.Benigns()) || !strings.Contains(out, "wrote ") {
		t.Fatalf("%d incidents, %d benign keys; output %q", len(tr.Incidents), len(tr.Benign), out)
	}
	if b, _ := os.ReadFile(events); len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatal("events file is not gzip")
	}
}

func TestSimulateRejectsBadFlagsWithAdvice(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"truth without scenario", []string{"--truth", "t.json"}, "--scenario and --truth go together"},
		{"unknown attack", []string{"--attack", "ddos"}, "choose from all, brute-force"},
		{"unknown benign", []string{"--benign", "nat"}, "choose from all, office-nat"},
		{"bad cidr", []string{"--listed-cidrs", "10.0.0.1"}, "is not a CIDR"},
		{"bad start", []string{"--start", "yesterday", "--scenario", "a", "--truth", "b"}, "use RFC 3339"},
		{"spike without background", []string{"--attack", "error-spike", "--rate", "0"}, "set a rate above 0"},
		{"argument", []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runSimulateArgs(t, tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want 2 and %q", code, out, tc.want)
			}
		})
	}
}

func TestSimulateHelpNamesEveryAttackAndPattern(t *testing.T) {
	code, out := runSimulateArgs(t, "-h")
	for _, a := range simulate.Attacks() {
		if !strings.Contains(out, string(a)) {
			t.Errorf("help lacks attack %s", a)
		}
	}
	if code != 0 || !strings.Contains(out, "Benign patterns: office-nat") || !strings.Contains(out, "at least 25m") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}
