package ruletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		name, in string
		i        int
		want     string
	}{
		{"plain", "alice", 7, "alice"},
		{"index", "user{{i}}", 7, "user7"},
		{"modulo", "10.0.0.{{i%4}}", 7, "10.0.0.3"},
		{"twice", "{{i}}-{{i%2}}", 3, "3-1"},
		{"modulo zero kept", "{{i%0}}", 3, "{{i%0}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := expand(tc.in, tc.i); got != tc.want {
				t.Fatalf("expand(%q, %d) = %q, want %q", tc.in, tc.i, got, tc.want)
			}
		})
	}
}

const testRules = `rules:
  - name: fails
    description: d
    severity: low
    category: test
    match: status == 401
    group_by: [source_ip]
    threshold: {count: 3, window: 1m}
`

func TestRunFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(
		`{"ts":"2025-01-01T00:00:01Z","service":"auth","method":"POST","endpoint":"/l","status":401,"source_ip":"192.0.2.9"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	head := "rule_files: [r.yaml]\ntests:\n  - name: t\n    events:\n      - {at: 2s, every: 1s, count: %d, event: {service: auth, method: POST, endpoint: /l, status: 401, source_ip: 192.0.2.9}}\n"
	tests := []struct {
		name   string
		count  int
		extra  string
		failed int
		out    []string
	}{
		{"fires as expected", 3, "    expect:\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: firing, by: 5s}\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: resolved}\n", 0, []string{"ok "}},
		{"input file completes the count", 2, "    input_file: in.jsonl\n    expect:\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: firing}\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: resolved}\n", 0, []string{"ok "}},
		{"missing and unexpected", 3, "    expect:\n      - {rule: fails, labels: {source_ip: 192.0.2.1}, transition: firing}\n", 1,
			[]string{"missing:    fails firing {source_ip=192.0.2.1}", "unexpected: fails firing {source_ip=192.0.2.9} at +4s", "got:"}},
		{"too late", 3, "    expect:\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: firing, by: 3s}\n      - {rule: fails, labels: {source_ip: 192.0.2.9}, transition: resolved}\n", 1, []string{"by +3s"}},
		{"expects quiet", 2, "    expect: []\n", 0, []string{"ok "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "t.yaml")
			src := strings.Replace(head, "%d", string(rune('0'+tc.count)), 1) + tc.extra
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			r := Runner{Out: &out}
			_, failed, err := r.RunFile(p)
			if err != nil || failed != tc.failed {
				t.Fatalf("failed = %d, err = %v, want %d failed\n%s", failed, err, tc.failed, out.String())
			}
			for _, w := range tc.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestRunFileErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key": "tests:\n  - name: x\n    evnts: []\n",
		"no tests":    "tests: []\n",
		"bad event":   "tests:\n  - name: x\n    events:\n      - {event: {service: a, status: 42}}\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "x.yaml")
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			r := Runner{Out: &out}
			_, failed, err := r.RunFile(p)
			if err == nil && failed == 0 {
				t.Fatalf("no error or failure for %q", src)
			}
		})
	}
}
