package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/rules"
)

// shippedCount is the number of rules in the default set.
func shippedCount(t *testing.T) int {
	t.Helper()
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

// kindCounts is how vigil rules check sums up the default set's kinds.
func kindCounts(t *testing.T) string {
	t.Helper()
	rs, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range rs {
		n[string(r.Kind())]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

func TestRulesCommand(t *testing.T) {
	shipped, kinds := shippedCount(t), kindCounts(t)
	badDir := t.TempDir()
	writeFileIn(t, badDir, "bad.yaml", "rules:\n  - name: x\n    severity: high\n    category: c\n    match: status ==\n    threshold: {count: 1, window: 1m}\n")
	unknownKey := t.TempDir()
	writeFileIn(t, unknownKey, "a.yaml", "rules:\n  - name: x\n    severity: high\n    colour: red\n")
	failing := writeFile(t, "failing.yaml", []byte(`tests:
  - name: expects an alert that never comes
    events:
      - {at: 0s, event: {service: auth, method: POST, endpoint: /v1/auth/login, status: 401, source_ip: 192.0.2.1, user: a}}
    expect:
      - {rule: brute_force_source_ip, labels: {source_ip: 192.0.2.1}, transition: firing}
`))
	tests, _ := filepath.Glob("../../rules/tests/*.yaml")
	mixed := t.TempDir() // a rule file and a rule test file side by side
	writeFileIn(t, mixed, "rules.yaml", "rules:\n  - name: x\n    severity: high\n    category: c\n    match: status == 401\n    threshold: {count: 1, window: 1m}\n")
	writeFileIn(t, mixed, "x_test.yaml", "tests:\n  - name: x fires\n    events: []\n")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"check embedded", []string{"check"}, 0, fmt.Sprintf("ok: %d rules in the embedded rule set", shipped), ""},
		{"check repo dir", []string{"check", "../../rules"}, 0, fmt.Sprintf("ok: %d rules in ../../rules: %s", shipped, kinds), ""},
		{"check bad expr", []string{"check", badDir}, 1, "", "bad.yaml:2: rule \"x\": match:"},
		{"check unknown key", []string{"check", unknownKey}, 1, "", "a.yaml:4: field colour not found"},
		{"check one rule file", []string{"check", mixed + "/rules.yaml"}, 0, "ok: 1 rules in " + mixed + "/rules.yaml", ""},
		{"check a rule test file", []string{"check", mixed + "/x_test.yaml"}, 1, "",
			mixed + "/x_test.yaml is a rule test file (it has tests:), not a rule file: run it with vigil rules test " + mixed + "/x_test.yaml\n"},
		{"check a directory holding a rule test file", []string{"check", mixed}, 1, "",
			mixed + "/x_test.yaml is a rule test file (it has tests:), not a rule file: run it with vigil rules test " + mixed + "/x_test.yaml; keep rule tests out of the rule directory\n"},
		{"test default rules", append([]string{"test"}, tests...), 0, " passed, 0 failed", ""},
		{"test failing", []string{"test", failing}, 1, "missing:    brute_force_source_ip firing {source_ip=192.0.2.1}", ""},
		{"test missing file", []string{"test", filepath.Join(t.TempDir(), "x.yaml")}, 1, "could not be run", "read rule test file"},
		{"no subcommand", nil, 2, "", "Usage"},
		{"unknown subcommand", []string{"lint"}, 2, "", "unknown subcommand"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runRules(context.Background(), streams{stdout: &out, stderr: &errb}, tc.args)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant code %d, stdout %q, stderr %q", code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func writeFileIn(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := writeFileErr(filepath.Join(dir, name), data); err != nil {
		t.Fatal(err)
	}
}

func writeFileErr(p, data string) error { return os.WriteFile(p, []byte(data), 0o644) }
