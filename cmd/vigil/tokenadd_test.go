package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
)

// TestTokenNewConfig runs `vigil token new --config FILE --quiet` on the
// shapes of config file it must edit, checks the file's exact new text, that
// vigil accepts the result and that the printed token is the one added.
func TestTokenNewConfig(t *testing.T) {
	const other = "  - name: old\n    sha256: 3a6c5e3c1b1f3f8a4d9d0e2b7c6a5f4e3d2c1b0a99887766554433221100ffee\n    scopes: [read]\n"
	cases := []struct {
		name   string
		before *string // nil: no file
		after  string  // with NEW for the added entry's hash
	}{
		{"no file", nil, "admin:\n  tokens:\n    - name: me\n      sha256: NEW\n      scopes: [read, write]\n"},
		{"no admin section", ptr("# my config\nlisten: 127.0.0.1:9750\n"),
			"# my config\nlisten: 127.0.0.1:9750\nadmin:\n  tokens:\n    - name: me\n      sha256: NEW\n      scopes: [read, write]\n"},
		{"no trailing newline", ptr("listen: 127.0.0.1:9750"),
			"listen: 127.0.0.1:9750\nadmin:\n  tokens:\n    - name: me\n      sha256: NEW\n      scopes: [read, write]\n"},
		{"admin without tokens", ptr("admin:\n    metrics_auth: true\nlog:\n  level: info\n"),
			"admin:\n    tokens:\n      - name: me\n        sha256: NEW\n        scopes: [read, write]\n    metrics_auth: true\nlog:\n  level: info\n"},
		{"empty admin", ptr("admin:\nlog:\n  level: info\n"),
			"admin:\n  tokens:\n    - name: me\n      sha256: NEW\n      scopes: [read, write]\nlog:\n  level: info\n"},
		{"tokens listed", ptr("admin:\n  tokens:\n" + other + "  # rotate yearly\n  metrics_auth: false\n"),
			"admin:\n  tokens:\n" + other + "  - name: me\n    sha256: NEW\n    scopes: [read, write]\n  # rotate yearly\n  metrics_auth: false\n"},
		{"tokens with block scopes", ptr("admin:\n  tokens:\n    - name: old\n      sha256_file: /run/old.sha256\n      scopes:\n        - read\n        - write\n"),
			"admin:\n  tokens:\n    - name: old\n      sha256_file: /run/old.sha256\n      scopes:\n        - read\n        - write\n    - name: me\n      sha256: NEW\n      scopes: [read, write]\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.yaml")
			if tc.before != nil {
				if err := os.WriteFile(path, []byte(*tc.before), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb bytes.Buffer
			code := runToken(context.Background(), streams{stdout: &out, stderr: &errb},
				[]string{"new", "--name", "me", "--scopes", "read,write", "--config", path, "--quiet"})
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			tok := strings.TrimSuffix(out.String(), "\n")
			if !tokenRE.MatchString(tok) || tok != tokenRE.FindString(tok) {
				t.Fatalf("stdout %q is not just the token", out.String())
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Replace(tc.after, "NEW", admin.HashToken(tok), 1); string(got) != want {
				t.Fatalf("file:\n%s\nwant:\n%s", got, want)
			}
			if strings.Contains(string(got)+errb.String(), tok) {
				t.Fatal("the token itself was written to the file or stderr")
			}
			cfg, err := config.Parse(path, got)
			if err != nil {
				t.Fatalf("vigil refuses the result: %v", err)
			}
			if n := len(cfg.Admin.Tokens); cfg.Admin.Tokens[n-1].Name != "me" {
				t.Fatalf("tokens %+v", cfg.Admin.Tokens)
			}
			fi, _ := os.Stat(path)
			if want := map[bool]os.FileMode{true: 0o600, false: 0o640}[tc.before == nil]; fi.Mode().Perm() != want {
				t.Fatalf("mode %o, want %o", fi.Mode().Perm(), want)
			}
			if !strings.Contains(errb.String(), "Added it to "+path+" under admin.tokens") {
				t.Fatalf("stderr %q does not say where the token went", errb.String())
			}
		})
	}
}

func TestTokenNewConfigRefused(t *testing.T) {
	cases := []struct{ name, before, want string }{
		{"flow admin", "admin: {metrics_auth: true}\n", "its admin section is not a block mapping; add this entry under admin.tokens yourself:\n  - name: me\n"},
		{"flow tokens", "admin:\n  tokens: []\n", "its admin.tokens is not a block list"},
		{"not YAML", "admin: [\n", "the file is not valid YAML"},
		{"name taken", "admin:\n  tokens:\n    - name: me\n      sha256_file: /run/me.sha256\n      scopes: [read]\n", `the name "me" is used twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.yaml")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := runToken(context.Background(), streams{stdout: &out, stderr: &errb},
				[]string{"new", "--name", "me", "--scopes", "read", "--config", path, "--quiet"})
			if code != 1 || !strings.Contains(errb.String(), tc.want) || out.Len() > 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1, no token and %q", code, out.String(), errb.String(), tc.want)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.before {
				t.Fatalf("the file changed:\n%s", got)
			}
		})
	}
}

func TestTokenNewQuietWithoutConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runToken(context.Background(), streams{stdout: &out, stderr: &errb},
		[]string{"new", "--name", "me", "--scopes", "read", "--quiet"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSuffix(out.String(), "\n")
	if tokenRE.FindString(out.String()) != tok {
		t.Fatalf("stdout %q is not just the token", out.String())
	}
	if !strings.Contains(errb.String(), "  - name: me\n    sha256: "+admin.HashToken(tok)+"\n") {
		t.Fatalf("stderr lacks the config entry:\n%s", errb.String())
	}
}

func ptr(s string) *string { return &s }
