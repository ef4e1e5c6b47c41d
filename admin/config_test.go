package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// goodHash is the SHA-256 of a token nobody could guess.
const goodHash = "3a6c5e3c1b1f3f8a4d9d0e2b7c6a5f4e3d2c1b0a99887766554433221100ffee"

func TestConfigValidate(t *testing.T) {
	tok := func(name, hash string, scopes ...Scope) TokenConfig {
		return TokenConfig{Name: name, SHA256: hash, Scopes: scopes}
	}
	tests := []struct {
		name    string
		mod     func(c *Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"one token", func(c *Config) { c.Tokens = []TokenConfig{tok("grafana-reader", goodHash, ScopeRead)} }, ""},
		{"bad name", func(c *Config) { c.Tokens = []TokenConfig{tok("has space", goodHash, ScopeRead)} }, "admin.tokens[0]: name"},
		{"duplicate name", func(c *Config) {
			c.Tokens = []TokenConfig{tok("a", goodHash, ScopeRead), tok("a", strings.Repeat("0", 64), ScopeRead)}
		}, "used twice"},
		{"duplicate hash", func(c *Config) {
			c.Tokens = []TokenConfig{tok("a", goodHash, ScopeRead), tok("b", goodHash, ScopeRead)}
		}, "same sha256 as a"},
		{"token instead of hash", func(c *Config) { c.Tokens = []TokenConfig{tok("a", "vigil_abc", ScopeRead)} }, "not the token itself"},
		{"upper-case hash", func(c *Config) { c.Tokens = []TokenConfig{tok("a", strings.ToUpper(goodHash), ScopeRead)} }, "lower-case hex"},
		{"no hash", func(c *Config) { c.Tokens = []TokenConfig{tok("a", "", ScopeRead)} }, "set sha256"},
		{"hash of test", func(c *Config) { c.Tokens = []TokenConfig{tok("a", HashToken("test"), ScopeRead)} },
			`admin.tokens[0]: a: the sha256 is the hash of "test", a well-known string, so anyone could use this token; make a real one with 'vigil token new --name a --scopes read'`},
		{"hash of echo password", func(c *Config) { c.Tokens = []TokenConfig{tok("a", HashToken("password\n"), ScopeRead)} },
			"hash of \"password\" followed by a newline (as `echo password | sha256sum` makes it)"},
		{"hash of nothing", func(c *Config) { c.Tokens = []TokenConfig{tok("a", HashToken(""), ScopeRead)} }, "hash of the empty string"},
		{"documentation placeholder", func(c *Config) { c.Tokens = []TokenConfig{tok("a", "<sha256 from vigil token new>", ScopeRead)} },
			"still the documentation's placeholder; run 'vigil token new --name a --scopes read'"},
		{"both hash forms", func(c *Config) {
			c.Tokens = []TokenConfig{{Name: "a", SHA256: goodHash, SHA256File: "/x", Scopes: []Scope{ScopeRead}}}
		}, "both set"},
		{"no scopes", func(c *Config) { c.Tokens = []TokenConfig{tok("a", goodHash)} }, "scopes is empty"},
		{"unknown scope", func(c *Config) { c.Tokens = []TokenConfig{tok("a", goodHash, "root")} }, `unknown scope "root"`},
		{"repeated scope", func(c *Config) { c.Tokens = []TokenConfig{tok("a", goodHash, ScopeRead, ScopeRead)} }, "listed twice"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "/c" }, "set together"},
		{"client CA without TLS", func(c *Config) { c.TLS.ClientCAFile = "/ca" }, "need cert_file and key_file"},
		{"TLS 1.1 floor", func(c *Config) { c.TLS = TLSConfig{CertFile: "/c", KeyFile: "/k", MinVersion: "1.1"} }, `min_version "1.1"`},
		{"TLS 1.3 floor", func(c *Config) { c.TLS = TLSConfig{CertFile: "/c", KeyFile: "/k", MinVersion: "1.3"} }, ""},
		{"zero rate", func(c *Config) { c.RateLimit.RequestsPerSecond = 0 }, "requests_per_second"},
		{"zero burst", func(c *Config) { c.RateLimit.Burst = 0 }, "burst"},
		{"zero clients", func(c *Config) { c.RateLimit.MaxClients = 0 }, "max_clients"},
		{"zero body", func(c *Config) { c.MaxBodyBytes = 0 }, "max_body_bytes"},
		{"tiny headers", func(c *Config) { c.MaxHeaderBytes = 10 }, "max_header_bytes"},
		{"no read timeout", func(c *Config) { c.Timeouts.Read = 0 }, "admin.timeouts.read:"},
		{"header timeout over read", func(c *Config) { c.Timeouts.ReadHeader = time.Minute }, "must not exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestConfigYAML decodes the example onto the defaults, strictly.
func TestConfigYAML(t *testing.T) {
	src := `
tokens:
  - name: grafana-reader
    sha256: 3a6c5e3c1b1f3f8a4d9d0e2b7c6a5f4e3d2c1b0a99887766554433221100ffee
    scopes: [read]
  - name: oncall
    sha256_file: /run/secrets/oncall.sha256
    scopes: [read, write]
metrics_auth: false
rate_limit: {requests_per_second: 5}
timeouts: {read: 20s}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"tokens", len(cfg.Tokens), 2},
		{"hash file", cfg.Tokens[1].SHA256File, "/run/secrets/oncall.sha256"},
		{"scopes", len(cfg.Tokens[1].Scopes), 2},
		{"rate set", cfg.RateLimit.RequestsPerSecond, 5.0},
		{"burst default kept", cfg.RateLimit.Burst, 20},
		{"timeout set", cfg.Timeouts.Read, 20 * time.Second},
		{"timeout default kept", cfg.Timeouts.Idle, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("unknown key refused", func(t *testing.T) {
		d := yaml.NewDecoder(strings.NewReader("tokenz: []\n"))
		d.KnownFields(true)
		c := DefaultConfig()
		if err := d.Decode(&c); err == nil {
			t.Fatal("unknown key accepted")
		}
	})
}

func TestLoadTokensFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok, hash := NewToken()
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"bare hash", hash + "\n", ""},
		{"sha256sum output", hash + "  -\n", ""},
		{"upper case", strings.ToUpper(hash), ""},
		{"the token itself", tok + "\n", "must start with the 64 hex digits"},
		{"hash of changeme", HashToken("changeme") + "  -\n", `admin.tokens[0] (oncall): sha256_file ` + dir + `/he: the sha256 is the hash of "changeme"`},
		{"empty", "", "must start with the 64 hex digits"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write("h"+string(rune('a'+i)), tt.content)
			ts, err := loadTokens([]TokenConfig{{Name: "oncall", SHA256File: p, Scopes: []Scope{ScopeWrite}}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadTokens = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tok) {
					t.Fatal("error holds the file's content")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ts.lookup(tok); got == nil || got.name != "oncall" {
				t.Fatalf("lookup = %+v", got)
			}
		})
	}
	t.Run("same hash inline and in a file", func(t *testing.T) {
		p := write("dup", hash)
		_, err := loadTokens([]TokenConfig{
			{Name: "a", SHA256: hash, Scopes: []Scope{ScopeRead}},
			{Name: "b", SHA256File: p, Scopes: []Scope{ScopeRead}},
		})
		if err == nil || !strings.Contains(err.Error(), "same sha256 as a") {
			t.Fatalf("err = %v", err)
		}
	})
}
