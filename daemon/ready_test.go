package daemon

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// runNATS starts a standalone JetStream server on port with store dir.
func runNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	return startNATS(t, &server.Options{Port: port, StoreDir: dir})
}

// runNATSWithUser starts a standalone JetStream server on port that
// accepts only user with password.
func runNATSWithUser(t *testing.T, port int, user, password string) *server.Server {
	t.Helper()
	return startNATS(t, &server.Options{Port: port, StoreDir: t.TempDir(), Username: user, Password: password})
}

func startNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.JetStream, opts.NoSigs, opts.NoLog = "127.0.0.1", true, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	return ns
}

func TestReadyzFollowsNATSConnection(t *testing.T) {
	port, _ := strconv.Atoi(freePort(t))
	store := t.TempDir()
	ns := runNATS(t, port, store)
	t.Cleanup(ns.Shutdown)

	cfg := testConfig(t)
	cfg.NATS.URL = ns.ClientURL()
	r := startDaemon(t, cfg)
	url := fmt.Sprintf("http://%s/readyz", r.d.Addr())
	wantStatus := func(code int) func() error {
		return func() error {
			if got, body := httpGet(t, url); got != code {
				return fmt.Errorf("readyz = %d %s", got, body)
			}
			return nil
		}
	}
	testkit.WaitFor(t, 10*time.Second, "ready with NATS up", wantStatus(http.StatusOK))
	if code, _ := httpGet(t, fmt.Sprintf("http://%s/healthz", r.d.Addr())); code != http.StatusOK {
		t.Fatalf("healthz = %d, want 200", code)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	testkit.WaitFor(t, 10*time.Second, "not ready with NATS down", wantStatus(http.StatusServiceUnavailable))
	if code, _ := httpGet(t, fmt.Sprintf("http://%s/healthz", r.d.Addr())); code != http.StatusOK {
		t.Fatalf("healthz = %d with NATS down, want 200: the process is alive", code)
	}

	ns = runNATS(t, port, store)
	t.Cleanup(ns.Shutdown)
	testkit.WaitFor(t, 20*time.Second, "ready again after NATS returns", wantStatus(http.StatusOK))
}
