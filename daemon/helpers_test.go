package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// testConfig returns a config on random loopback ports with its own data dir.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.DataDir = t.TempDir()
	cfg.Ingest.FetchWait = 100 * time.Millisecond
	return cfg
}

// running is a daemon started by startDaemon.
type running struct {
	d    *Daemon
	stop func() // cancels Run and waits for it
}

func startDaemon(t *testing.T, cfg config.Config) *running {
	t.Helper()
	return startDaemonWith(t, cfg, Options{Logger: testLogger(t), Stdout: io.Discard})
}

// testLogger discards the log, or with -v writes it to the test's.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startDaemonWith(t *testing.T, cfg config.Config, opts Options) *running {
	t.Helper()
	opts.Version = "test"
	d, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return runDaemon(t, d)
}

// runDaemon runs d until the test ends, once it is ready.
func runDaemon(t *testing.T, d *Daemon) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r := &running{d: d}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(r.stop)
	testkit.WaitFor(t, 10*time.Second, "daemon ready", func() error { return d.Ready() })
	return r
}

// waitSettled moves clk, the daemon's clock, on by a second at each try
// (a tick of detection and of ingest's polls) until the daemon has caught
// up with the stream and settled alert state after its rebuild.
func waitSettled(t *testing.T, r *running, clk *clock.Fake) {
	t.Helper()
	testkit.WaitUntil(t, 15*time.Second, "alert state settled after the rebuild", func() bool {
		clk.Advance(time.Second)
		return !r.d.detector.state.Load().unsettled.Load()
	})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// metric returns the value of the counter or gauge name with the given
// label pairs ("k", "v", ...), or 0 when no such series exists.
func metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func connectJS(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// publish sends data to subject with Nats-Msg-Id id and waits for the ack.
func publish(t *testing.T, js jetstream.JetStream, subject, id string, data []byte) *jetstream.PubAck {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = data
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	return ack
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func equalf(got, want float64, what string) error {
	if got != want {
		return fmt.Errorf("%s = %v, want %v", what, got, want)
	}
	return nil
}

func newMsg(subject, id string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = append([]byte(nil), data...)
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}

// freePort returns a loopback TCP port that was free a moment ago, for a
// server that must come back on the same address.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// publishAsync publishes m without waiting for its ack, but waits for the
// outstanding acks whenever many are pending, so a slow (race-detector)
// run never stalls the publisher.
func publishAsync(t *testing.T, js jetstream.JetStream, m *nats.Msg) {
	t.Helper()
	if js.PublishAsyncPending() >= 500 {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("JetStream did not acknowledge published events within 30s")
		}
	}
	if _, err := js.PublishMsgAsync(m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}
