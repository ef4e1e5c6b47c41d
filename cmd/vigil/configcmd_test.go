package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("VIGIL_TEST_HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		notInOut string
	}{
		{name: "defaults are valid", args: []string{"check"}, code: 0, stdout: "config ok: 8 rules, 1 receivers, 1 routes"},
		{name: "unknown receiver in a route", args: []string{"check", "--config", write("a.yaml",
			"receivers:\n  - name: console\n    log: {}\nroutes:\n  - receivers: [pager]\n")}, code: 1, stderr: "pager"},
		{name: "unknown key with file and line", args: []string{"check", "--config", write("b.yaml", "listen: x:1\nlisen: y\n")},
			code: 1, stderr: "b.yaml: line 2: field lisen not found"},
		{name: "missing rules directory", args: []string{"check", "--rules", filepath.Join(dir, "nope")}, code: 1, stderr: "nope"},
		{name: "show redacts secrets", args: []string{"show", "--config", write("c.yaml",
			"receivers:\n  - name: siem\n    webhook:\n      url: https://siem.example.com/h\n      secret: ${VIGIL_TEST_HOOK_SECRET}\nroutes:\n  - receivers: [siem]\n")},
			code: 0, stdout: "secret: <secret>", notInOut: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{name: "no subcommand", args: nil, code: 2, stderr: "Usage: vigil config check|show"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runConfig(context.Background(), streams{stdout: &out, stderr: &errb}, tc.args)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d, stdout with %q, stderr with %q",
					code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
			}
			if tc.notInOut != "" && strings.Contains(out.String()+errb.String(), tc.notInOut) {
				t.Fatalf("output contains %q", tc.notInOut)
			}
		})
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), streams{stdout: &out, stderr: &errb}, []string{"version"}); code != 0 || !strings.HasPrefix(out.String(), "vigil dev (commit ") {
		t.Fatalf("version: code %d, %q", code, out.String())
	}
	if code := dispatch(context.Background(), streams{stdout: &out, stderr: &errb}, []string{"frobnicate"}); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, %q", code, errb.String())
	}
}
