package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/privacy"
)

// TestStartupErrorsAreClear starts the daemon with each configuration or
// environment mistake a first user makes. New must return an error naming
// the problem and how to fix it (no panic), and release what it had
// started: no goroutine keeps running and the embedded NATS port is free
// again.
func TestStartupErrorsAreClear(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	missing := filepath.Join(t.TempDir(), "missing")
	cases := []struct {
		name  string
		set   func(*config.Config)
		wants []string // fragments of the error
	}{
		{"admin port busy", func(c *config.Config) { c.Listen = busy.Addr().String() },
			[]string{"admin API cannot listen on " + busy.Addr().String(), "address already in use", "--listen"}},
		{"admin port impossible", func(c *config.Config) { c.Listen = "127.0.0.1:99999" },
			[]string{"admin API cannot listen on 127.0.0.1:99999", "invalid port", "--listen"}},
		{"nats port busy", func(c *config.Config) { c.NATS.Listen = busy.Addr().String() },
			[]string{"embedded nats cannot listen on " + busy.Addr().String(), "address already in use", "--nats-listen"}},
		{"token sha256_file missing", func(c *config.Config) {
			c.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256File: missing, Scopes: []admin.Scope{admin.ScopeRead}}}
		}, []string{"admin.tokens[0] (oncall): sha256_file: open " + missing, "point it at a file", "'vigil token new'"}},
		{"tls file missing", func(c *config.Config) {
			c.Admin.TLS.CertFile, c.Admin.TLS.KeyFile = missing+".crt", missing+".key"
		}, []string{"admin.tls: load cert_file " + missing + ".crt", "point cert_file at the PEM certificate", "or remove admin.tls"}},
		{"privacy key missing", func(c *config.Config) {
			c.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldUser}, KeyFile: missing}
		}, []string{"privacy.key_file", missing, "head -c 32 /dev/urandom"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testkit.CheckGoroutines(t)
			cfg := testConfig(t)
			cfg.NATS.Listen = "127.0.0.1:" + freePort(t)
			tc.set(&cfg)
			d, err := New(context.Background(), cfg, Options{})
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if cfg.NATS.Listen != busy.Addr().String() {
				ln, err := net.Listen("tcp", cfg.NATS.Listen)
				if err != nil {
					t.Fatalf("the embedded NATS port is still taken after the failed start: %v", err)
				}
				ln.Close()
			}
		})
	}
}

// TestStartupWaitsForExternalNATS starts the daemon with an external NATS
// server that is not running yet. New must say in the log that it waits,
// and for what, and go on once the server comes; or stop with a clear error
// when it is told to stop first.
func TestStartupWaitsForExternalNATS(t *testing.T) {
	testkit.CheckGoroutines(t)
	port := freePort(t)
	cfg := testConfig(t)
	cfg.NATS.URL = "nats://vigil:s3cret-pw@127.0.0.1:" + port

	var logs testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		d   *Daemon
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		done <- result{d, err}
	}()
	testkit.WaitUntil(t, 10*time.Second, "the log to say that the daemon waits for NATS", func() bool {
		return strings.Contains(logs.String(), `"msg":"waiting for NATS`)
	})
	if strings.Contains(logs.String(), "s3cret-pw") {
		t.Errorf("the NATS password appears in the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "127.0.0.1:"+port) {
		t.Errorf("the log does not say which NATS it waits for:\n%s", logs.String())
	}
	n, _ := strconv.Atoi(port)
	ns := runNATSWithUser(t, n, "vigil", "s3cret-pw")
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	r := <-done
	if r.err != nil {
		t.Fatalf("New after NATS came: %v", r.err)
	}
	r.d.Close()

	// Told to stop while waiting.
	ns.Shutdown()
	ns.WaitForShutdown()
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		d, err := New(ctx2, cfg, Options{})
		done <- result{d, err}
	}()
	cancel2()
	r = <-done
	if r.err == nil {
		r.d.Close()
		t.Fatal("New succeeded without NATS")
	}
	if !strings.Contains(r.err.Error(), "stopped while waiting for NATS") || !strings.Contains(r.err.Error(), "--nats-url") ||
		strings.Contains(r.err.Error(), "s3cret-pw") {
		t.Errorf("error = %q", r.err)
	}
	if errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("New gave up on its own: %v", r.err)
	}
}
