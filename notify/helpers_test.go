package notify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// testSettings keeps retries fast.
func testSettings() Settings {
	s := DefaultSettings()
	s.InitialBackoff = 10 * time.Millisecond
	s.MaxBackoff = 40 * time.Millisecond
	s.AttemptTimeout = time.Second
	s.AckWait = 2 * time.Second
	s.BreakerFailures = 50
	s.BreakerOpenFor = 50 * time.Millisecond
	s.MaxElapsed = 30 * time.Second
	return s
}

type harness struct {
	t    *testing.T
	n    *Notifier
	reg  *prometheus.Registry
	logs *testkit.SyncBuffer
	out  *testkit.SyncBuffer // log receiver output
	stop func()
}

// start builds a Notifier on js and runs it until stop or cleanup.
// Each of with may change the options it is built with.
func start(t *testing.T, cfg Config, js jetstream.JetStream, with ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), logs: &testkit.SyncBuffer{}, out: &testkit.SyncBuffer{}}
	opts := Options{
		Logger:     slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: h.reg,
		LogWriter:  h.out,
	}
	for _, f := range with {
		f(&opts)
	}
	n, err := New(t.Context(), cfg, js, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.n = n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(h.stop)
	return h
}

// Checks for testkit.WaitFor, which the tests that need a real nats-server
// poll through: each passes once its condition holds, and otherwise says
// what it sees.

// count passes once got returns want.
func count(what string, want int, got func() int) func() error {
	return func() error {
		if n := got(); n != want {
			return fmt.Errorf("%d %s, want %d", n, what, want)
		}
		return nil
	}
}

// queued passes once the outbox holds want deliveries.
func queued(h *harness, want uint64) func() error {
	return func() error {
		d, err := h.n.QueueDepth(h.t.Context())
		if err == nil && d != want {
			err = fmt.Errorf("%d deliveries in the outbox, want %d", d, want)
		}
		return err
	}
}

// metricIs passes once the series name{labels} has the value want.
func metricIs(reg *prometheus.Registry, name string, labels map[string]string, want float64) func() error {
	return func() error {
		got, err := seriesValue(reg, name, labels)
		if err == nil && got != want {
			err = fmt.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
		return err
	}
}

// all passes once every check passes.
func all(checks ...func() error) func() error {
	return func() error {
		for _, c := range checks {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
}

// notifications returns how many notifications the log receiver wrote.
func (h *harness) notifications() int { return len(records(h.t, h.out.String())) }

// delivered passes once the log receiver wrote want notifications and the
// outbox is empty.
func delivered(h *harness, want int) func() error {
	return all(count("notifications", want, h.notifications), queued(h, 0))
}

func testAlert(fp string, tr detect.Transition) detect.Alert {
	a := detect.Alert{
		Rule: "brute_force_user", Category: "brute_force", Severity: "high",
		State: detect.StateFiring, Transition: tr,
		Labels: map[string]string{"service": "api", "user": "admin"},
		Value:  57, Threshold: 20, Window: detect.Duration(5 * time.Minute),
		StartsAt:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Fingerprint: fp, Summary: "57 failed logins for admin",
		Sample: []string{"req-1", "req-2"},
	}
	if tr == detect.TransitionResolved {
		a.State = detect.StateResolved
		a.EndsAt = a.StartsAt.Add(10 * time.Minute)
	}
	return a
}

// request is what a recording HTTP endpoint saw.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
}

// endpoint is an httptest server that records requests and answers with
// the status reply returns for the n-th request (0-based).
type endpoint struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []request
	reply func(n int, w http.ResponseWriter) int
}

func newEndpoint(t *testing.T, reply func(n int, w http.ResponseWriter) int) *endpoint {
	t.Helper()
	e := &endpoint{reply: reply}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		n := len(e.reqs)
		e.reqs = append(e.reqs, request{at: time.Now(), header: r.Header.Clone(), body: body})
		e.mu.Unlock()
		status := http.StatusOK
		if e.reply != nil {
			status = e.reply(n, w)
		}
		w.WriteHeader(status)
		fmt.Fprint(w, http.StatusText(status))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) requests() []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]request(nil), e.reqs...)
}

func (e *endpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.reqs)
}
