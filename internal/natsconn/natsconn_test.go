package natsconn

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestValidate(t *testing.T) {
	pw, _ := secret.FromString("hunter2", func(string) (string, bool) { return "", false })
	cases := []struct {
		name   string
		tune   func(*Config)
		inline bool
		want   string
	}{
		{"defaults", func(*Config) {}, false, ""},
		{"bad listen", func(c *Config) { c.Listen = "4222" }, false, "nats.listen"},
		{"cluster replicas", func(c *Config) { c.URL, c.Replicas = "nats://a:4222", 3 }, false, ""},
		{"replicas with embedded", func(c *Config) { c.Replicas = 3 }, false, "embedded"},
		{"too many replicas", func(c *Config) { c.URL, c.Replicas = "nats://a", 7 }, false, "at most 5"},
		{"creds and nkey", func(c *Config) { c.URL, c.CredsFile, c.NKeySeedFile = "nats://a", "a", "b" }, false, "keep one"},
		{"inline password refused", func(c *Config) { c.URL, c.User, c.Password = "nats://a", "u", pw }, false, "allow_inline_secrets"},
		{"inline password allowed", func(c *Config) { c.URL, c.User, c.Password = "nats://a", "u", pw }, true, ""},
		{"cert without key", func(c *Config) { c.URL, c.TLS.CertFile = "nats://a", "c.pem" }, false, "go together"},
		{"missing creds file", func(c *Config) { c.URL, c.CredsFile = "nats://a", "/nonexistent/vigil.creds" }, false, "vigil.creds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.tune(&c)
			err := c.Validate(tc.inline)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

func TestEmbeddedServerAndConnect(t *testing.T) {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:-1"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := StartEmbedded(c, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	if !ns.JetStreamEnabled() || !strings.HasPrefix(ns.StoreDir(), filepath.Clean(ns.StoreDir())) {
		t.Fatal("embedded server without JetStream")
	}
	nc, err := Connect(c, ns.ClientURL(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	busy := c
	busy.Listen = strings.TrimPrefix(ns.ClientURL(), "nats://")
	if _, err := StartEmbedded(busy, t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "--nats-listen") {
		t.Fatalf("a second server on the same address: err = %v, want a clear error", err)
	}
}

// TestDisconnectLogs checks that only a lost connection warns: closing the
// connection on purpose (as a clean shutdown does) logs no warning.
func TestDisconnectLogs(t *testing.T) {
	cases := []struct {
		name     string
		end      func(*nats.Conn, *server.Server)
		wantWarn bool
	}{
		{"close", func(nc *nats.Conn, _ *server.Server) { nc.Close() }, false},
		{"drain", func(nc *nats.Conn, _ *server.Server) { _ = nc.Drain() }, false},
		{"server gone", func(_ *nats.Conn, ns *server.Server) { ns.Shutdown() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testkit.RunNATS(t)
			var logs testkit.SyncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			nc, err := Connect(DefaultConfig(), ns.ClientURL(), log)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			tc.end(nc, ns)
			testkit.WaitFor(t, 10*time.Second, "the disconnect to be logged", func() error {
				if !strings.Contains(logs.String(), "nats disconnected") && !strings.Contains(logs.String(), "nats connection closed") {
					return errors.New("nothing logged yet")
				}
				return nil
			})
			if got := strings.Contains(logs.String(), "level=WARN"); got != tc.wantWarn {
				t.Fatalf("warning logged = %v, want %v; log:\n%s", got, tc.wantWarn, logs.String())
			}
		})
	}
}

// TestCheck uses real files: what Connect would fail on is reported, with
// its key, before anything connects.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	creds, seed := testfiles.NATSCreds(t, dir), testfiles.NKeySeed(t, dir)
	cert, key := testfiles.TLS(t, dir, "client")
	junk := testfiles.Write(t, dir, "junk", "not a key\n")
	cases := []struct {
		name string
		tune func(*Config)
		want string
	}{
		{"embedded defaults", func(*Config) {}, ""},
		{"creds, CA and client certificate", func(c *Config) {
			c.URL, c.CredsFile, c.TLS = "tls://nats-1:4222, tls://nats-2:4222", creds, TLSConfig{CAFile: cert, CertFile: cert, KeyFile: key}
		}, ""},
		{"nkey seed", func(c *Config) { c.URL, c.NKeySeedFile = "nats://a:4222", seed }, ""},
		{"URL without scheme", func(c *Config) { c.URL = "nats-1:4222" }, ""},
		{"creds file without creds", func(c *Config) { c.URL, c.CredsFile = "nats://a", junk }, "nats.creds_file: "},
		{"seed file without a seed", func(c *Config) { c.URL, c.NKeySeedFile = "nats://a", junk }, "nats.nkey_seed_file: "},
		{"CA file without certificates", func(c *Config) { c.URL, c.TLS.CAFile = "nats://a", junk }, "nats.tls.ca_file: "},
		{"key that is not a key", func(c *Config) { c.URL, c.TLS.CertFile, c.TLS.KeyFile = "nats://a", cert, junk }, "nats.tls.cert_file: "},
		{"unknown scheme", func(c *Config) { c.URL = "http://nats:4222" }, `nats.url: http://nats:4222: unknown scheme "http"`},
		{"port out of range", func(c *Config) { c.URL = "nats://a:99999" }, `port "99999" is not a port number`},
		{"no host", func(c *Config) { c.URL = "nats://:4222" }, "has no host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.tune(&c)
			if err := c.Validate(false); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			err := c.Check()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
		})
	}
}
