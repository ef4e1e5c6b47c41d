package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/internal/testkit"
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
		{name: "defaults are valid", args: []string{"check"}, code: 0, stdout: fmt.Sprintf("config ok: %d rules, 1 receivers, 1 routes", shippedCount(t))},
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

// TestRunRefusesWhatCheckRefuses gives `vigil run` and `vigil config check`
// configs that can never work: both refuse each with the same message, and
// run stops before it starts anything.
func TestRunRefusesWhatCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	cert, key := testfiles.TLS(t, dir, "admin")
	ruleDir := t.TempDir()
	testfiles.Write(t, ruleDir, "brute_force.yaml", "tests:\n  - name: x\n    events: []\n")
	cases := []struct {
		name string
		yaml string
		args []string
		want string
	}{
		{"impossible listen address", "", []string{"--listen", "127.0.0.1:99999"}, `listen "127.0.0.1:99999" cannot be listened on`},
		{"missing token hash file", "admin:\n  tokens:\n    - {name: oncall, sha256_file: " + missing + ", scopes: [read]}\n", nil,
			"admin.tokens[0] (oncall): sha256_file: open " + missing},
		{"missing TLS certificate", "admin:\n  tls: {cert_file: " + missing + ", key_file: " + key + "}\n", nil, "admin.tls: load cert_file " + missing},
		{"missing client CA", "admin:\n  tls: {cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + missing + "}\n", nil, "admin.tls.client_ca_file: open " + missing},
		{"missing secret file", "receivers:\n  - name: siem\n    webhook: {url: 'https://siem.example.com/h', secret_file: " + missing + "}\nroutes:\n  - receivers: [siem]\n", nil,
			"secret_file: read secret file: open " + missing},
		{"missing privacy key", "privacy:\n  pseudonymize: [user]\n  key_file: " + missing + "\n", nil, "privacy.key_file cannot be read: open " + missing},
		{"weak token", "admin:\n  tokens:\n    - {name: oncall, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, scopes: [read]}\n", nil,
			`the sha256 is the hash of "test", a well-known string`},
		{"duration without unit", "ingest:\n  ack_wait: 30\n", nil, `line 2: invalid duration "30": write it with a unit, e.g. 90s`},
		{"rule test file among the rules", "", []string{"--rules", ruleDir}, "is a rule test file (it has tests:), not a rule file: run it with vigil rules test"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--config", testfiles.Write(t, dir, fmt.Sprintf("c%d.yaml", i), tc.yaml),
				"--data-dir", filepath.Join(dir, "data"), "--nats-listen", "127.0.0.1:-1", "--listen", "127.0.0.1:0"}, tc.args...)
			var checkOut, checkErr, runOut, runErr bytes.Buffer
			checkCode := runConfig(context.Background(), streams{stdout: &checkOut, stderr: &checkErr}, append([]string{"check"}, args...))
			runCode := runDaemon(context.Background(), streams{stdout: &runOut, stderr: &runErr}, args)
			checkMsg, _ := strings.CutPrefix(checkErr.String(), "vigil config check: ")
			runMsg, _ := strings.CutPrefix(runErr.String(), "vigil run: ")
			if checkCode != 1 || !strings.Contains(checkMsg, tc.want) {
				t.Fatalf("config check: code %d, stdout %q, stderr %q; want code 1 and %q", checkCode, checkOut.String(), checkErr.String(), tc.want)
			}
			if runCode != 1 || runMsg != checkMsg {
				t.Fatalf("run: code %d, stderr %q; want code 1 and config check's message %q", runCode, runErr.String(), checkMsg)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Fatal("run created its data directory before refusing the config")
			}
		})
	}
}

// TestConfigShow checks that show says what is set, what is not, and where
// each secret comes from, never its value.
func TestConfigShow(t *testing.T) {
	t.Setenv("VIGIL_TEST_NATS_PASSWORD", "canary-9d2c41")
	cfg := testfiles.Write(t, t.TempDir(), "vigil.yaml", "nats:\n  url: nats://nats:4222\n  user: vigil\n  password: ${VIGIL_TEST_NATS_PASSWORD}\n")
	cases := []struct {
		name, args, want string
	}{
		{"unset secret", "", "\n  password: # unset\n"},
		{"empty default with its meaning", "", "\n  url: # unset: the embedded NATS server\n"},
		{"empty default", "", "\n  creds_file: # unset\n"},
		{"no tokens", "", "\n  tokens: [] # none: the API refuses every call\n"},
		{"duration as written by hand", "", "\n  stream_max_age: 168h\n"},
		{"secret from the environment", cfg, "\n  password: <secret> # from env VIGIL_TEST_NATS_PASSWORD\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"show"}
			if tc.args != "" {
				args = append(args, "--config", tc.args)
			}
			var out, errb bytes.Buffer
			if code := runConfig(context.Background(), streams{stdout: &out, stderr: &errb}, args); code != 0 {
				t.Fatalf("code %d: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "canary-9d2c41") {
				t.Fatalf("output lacks %q (or shows the secret):\n%s", tc.want, out.String())
			}
			var back map[string]any
			if err := yaml.Unmarshal(out.Bytes(), &back); err != nil {
				t.Fatalf("output is not YAML: %v", err)
			}
		})
	}
}

// TestLooseKeyFileWarns: a privacy key others may read is a warning in
// config check and in run's log (run goes on), and an error for both with
// secret_file_permissions: refuse.
func TestLooseKeyFileWarns(t *testing.T) {
	dir := t.TempDir()
	keyFile := testfiles.Write(t, dir, "privacy.key", strings.Repeat("k", 44))
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	doc := "privacy:\n  pseudonymize: [user]\n  key_file: " + keyFile + "\n"
	want := "privacy.key_file: " + keyFile + " has mode 0644: other users can read or change it; run chmod 600 " + keyFile
	flags := []string{"--data-dir", filepath.Join(dir, "data"), "--nats-listen", "127.0.0.1:-1", "--listen", "127.0.0.1:0"}

	t.Run("config check warns", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := runConfig(context.Background(), streams{stdout: &out, stderr: &errb},
			append([]string{"check", "--config", testfiles.Write(t, dir, "warn.yaml", doc)}, flags...))
		if code != 0 || errb.String() != "warning: "+want+" (or chmod 640 with the file owned by root and a group only Vigil's user is in)\n" {
			t.Fatalf("code %d, stderr %q; want 0 and the warning", code, errb.String())
		}
	})
	t.Run("run logs the warning and starts", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // start, then stop at once
		var out, errb testkit.SyncBuffer
		runDaemon(ctx, streams{stdout: &out, stderr: &errb}, append([]string{"--config", testfiles.Write(t, dir, "run.yaml", doc)}, flags...))
		var warned, started bool
		for line := range strings.Lines(errb.String()) {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				t.Fatalf("not a JSON log line: %q", line)
			}
			warned = warned || rec["level"] == "WARN" && rec["msg"] == "config warning" && strings.Contains(fmt.Sprint(rec["problem"]), want)
			started = started || rec["msg"] == "embedded nats started"
		}
		if !warned || !started {
			t.Fatalf("warned %v, started %v; log:\n%s", warned, started, errb.String())
		}
	})
	t.Run("refuse", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := runConfig(context.Background(), streams{stdout: &out, stderr: &errb},
			append([]string{"check", "--config", testfiles.Write(t, dir, "refuse.yaml", "secret_file_permissions: refuse\n"+doc)}, flags...))
		if code != 1 || !strings.Contains(errb.String(), want) {
			t.Fatalf("code %d, stderr %q; want 1 and the problem", code, errb.String())
		}
	})
}
