package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/internal/testfiles"
)

// TestPreflight gives Preflight configs that Validate accepts and that `vigil
// run` would refuse at start, with real files where the config names them.
func TestPreflight(t *testing.T) {
	dir := t.TempDir()
	cert, key := testfiles.TLS(t, dir, "admin")
	junk := testfiles.Write(t, dir, "junk", "not a certificate\n")
	shortKey := testfiles.Write(t, dir, "short.key", "0123456789\n")
	missing := filepath.Join(dir, "missing")
	_, hash := admin.NewToken()
	hashFile := testfiles.Write(t, dir, "oncall.sha256", hash+"\n")
	cases := []struct {
		name string
		yaml string
		want string // "" for success
	}{
		{"defaults", "", ""},
		{"token hash file and TLS", "admin:\n  tokens:\n    - {name: oncall, sha256_file: " + hashFile + ", scopes: [read]}\n" +
			"  tls: {cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + cert + "}\n", ""},
		{"free port", "listen: 127.0.0.1:0\nnats:\n  listen: 127.0.0.1:-1\n", ""},
		{"port out of range", "listen: 127.0.0.1:99999\n",
			`listen "127.0.0.1:99999" cannot be listened on (address 99999: invalid port); give host:port with a host of this machine and a port from 1 to 65535, e.g. 127.0.0.1:9750 (--listen)`},
		{"host that does not resolve", "listen: bad host:9750\n", `listen "bad host:9750" cannot be listened on (lookup bad host: no such host)`},
		{"embedded NATS host that does not resolve", "nats:\n  listen: bad host:4222\n", `nats.listen "bad host:4222" cannot be listened on`},
		{"data_dir is a file", "data_dir: " + junk + "\n", "data_dir " + junk + ": " + junk + " is a file, not a directory"},
		{"data_dir below a file", "data_dir: " + junk + "/vigil/data\n", "data_dir " + junk + "/vigil/data: " + junk + " is a file, not a directory"},
		{"data_dir to be created", "data_dir: " + dir + "/new/data\n", ""},
		{"missing token hash file", "admin:\n  tokens:\n    - {name: oncall, sha256_file: " + missing + ", scopes: [read]}\n",
			"admin.tokens[0] (oncall): sha256_file: open " + missing + ": no such file or directory"},
		{"missing TLS key", "admin:\n  tls: {cert_file: " + cert + ", key_file: " + missing + "}\n", "admin.tls: load cert_file " + cert + " and key_file " + missing},
		{"client CA without certificates", "admin:\n  tls: {cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + junk + "}\n",
			"admin.tls.client_ca_file " + junk + ": no PEM certificate found"},
		{"missing privacy key", "privacy:\n  pseudonymize: [user]\n  key_file: " + missing + "\n", "privacy.key_file cannot be read: open " + missing},
		{"short privacy key", "privacy:\n  pseudonymize: [user]\n  key_file: " + shortKey + "\n", "privacy.key_file " + shortKey + ": the key has 10 bytes, at least 32"},
		{"NATS CA without certificates", "nats:\n  url: tls://nats:4222\n  tls: {ca_file: " + junk + "}\n", "nats.tls.ca_file: "},
		{"NATS URL with a bad port", "nats:\n  url: nats://nats:99999\n", "nats.url: nats://nats:99999: port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("vigil.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			warnings, err := cfg.Preflight()
			if tc.want == "" {
				if err != nil || len(warnings) > 0 {
					t.Fatalf("Preflight = %v, warnings %q", err, warnings)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Preflight = %v\nwant an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestPreflightFileModes writes every kind of secret and key file a config
// can name, world-readable, and checks each is reported under its key: as a
// warning by default, as an error with secret_file_permissions: refuse, and
// not at all with owner-only modes.
func TestPreflightFileModes(t *testing.T) {
	dir := t.TempDir()
	cert, key := testfiles.TLS(t, dir, "admin")
	natsCert, natsKey := testfiles.TLS(t, dir, "nats-client")
	_, hash := admin.NewToken()
	files := map[string]string{
		"nats.password_file":               testfiles.Write(t, dir, "nats-password", "hunter2-but-longer\n"),
		"nats.nkey_seed_file":              testfiles.NKeySeed(t, dir),
		"nats.tls.key_file":                natsKey,
		"admin.tokens[0].sha256_file":      testfiles.Write(t, dir, "oncall.sha256", hash+"\n"),
		"admin.tls.key_file":               key,
		"privacy.key_file":                 testfiles.Write(t, dir, "privacy.key", strings.Repeat("k", 44)+"\n"),
		"receivers[0].webhook.secret_file": testfiles.Write(t, dir, "webhook-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"),
		"receivers[1].slack.token_file":    testfiles.Write(t, dir, "slack-token", "xoxb-1-2-3\n"),
	}
	public := []string{cert, natsCert} // certificates are not secret: never reported
	doc := "nats:\n  url: tls://nats:4222\n  user: vigil\n  password_file: " + files["nats.password_file"] +
		"\n  nkey_seed_file: " + files["nats.nkey_seed_file"] +
		"\n  tls: {ca_file: " + natsCert + ", cert_file: " + natsCert + ", key_file: " + natsKey + "}\n" +
		"admin:\n  tokens:\n    - {name: oncall, sha256_file: " + files["admin.tokens[0].sha256_file"] + ", scopes: [read]}\n" +
		"  tls: {cert_file: " + cert + ", key_file: " + key + "}\n" +
		"privacy:\n  pseudonymize: [source_ip]\n  key_file: " + files["privacy.key_file"] + "\n" +
		"receivers:\n  - name: siem\n    webhook: {url: 'https://siem.example.com/h', secret_file: " + files["receivers[0].webhook.secret_file"] + "}\n" +
		"  - name: slack\n    slack: {token_file: " + files["receivers[1].slack.token_file"] + ", channel: '#sec'}\n" +
		"routes:\n  - receivers: [siem, slack]\n"
	chmodAll := func(mode os.FileMode) {
		for _, p := range append(slices.Collect(maps.Values(files)), public...) {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	reported := func(t *testing.T, text string) {
		t.Helper()
		for k, p := range files {
			if !strings.Contains(text, k+": "+p+" has mode 0644: other users can read or change it; run chmod 600 "+p) {
				t.Errorf("%s (%s) not reported in:\n%s", k, p, text)
			}
		}
		for _, p := range public {
			if strings.Contains(text, p+" has mode") {
				t.Errorf("certificate %s reported", p)
			}
		}
	}

	t.Run("warn by default", func(t *testing.T) {
		chmodAll(0o644)
		cfg, err := Parse("vigil.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		warnings, err := cfg.Preflight()
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != len(files) {
			t.Errorf("%d warnings, want %d: %q", len(warnings), len(files), warnings)
		}
		reported(t, strings.Join(warnings, "\n"))
	})
	t.Run("refuse", func(t *testing.T) {
		chmodAll(0o644)
		cfg, err := Parse("vigil.yaml", []byte("secret_file_permissions: refuse\n"+doc))
		if err != nil {
			t.Fatal(err)
		}
		warnings, err := cfg.Preflight()
		if err == nil || len(warnings) > 0 {
			t.Fatalf("Preflight = %v, warnings %q; want an error", err, warnings)
		}
		reported(t, err.Error())
		if !strings.Contains(err.Error(), "secret_file_permissions is refuse") {
			t.Errorf("the error does not say why a warning became an error: %v", err)
		}
	})
	t.Run("owner only", func(t *testing.T) {
		chmodAll(0o600)
		cfg, err := Parse("vigil.yaml", []byte("secret_file_permissions: refuse\n"+doc))
		if err != nil {
			t.Fatal(err)
		}
		if warnings, err := cfg.Preflight(); err != nil || len(warnings) > 0 {
			t.Fatalf("Preflight = %v, warnings %q", err, warnings)
		}
	})
	t.Run("unknown setting", func(t *testing.T) {
		_, err := Parse("vigil.yaml", []byte("secret_file_permissions: ignore\n"))
		if err == nil || !strings.Contains(err.Error(), `secret_file_permissions "ignore": use warn (the default) or refuse`) {
			t.Fatalf("Parse = %v", err)
		}
	})
}
