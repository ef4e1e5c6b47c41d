package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// subject is where the test events are published; the part after
// vigil.events. is the events' service.
const subject = ingest.SubjectPrefix + "api"

// testConfig is the default config with the shortest ack_wait, so that
// redelivery comes within a test's time.
func testConfig() ingest.Config {
	cfg := ingest.DefaultConfig()
	cfg.AckWait = time.Second
	return cfg
}

// newConsumer creates a consumer on its own connection, with its own
// metrics registry.
func newConsumer(t *testing.T, s *server.Server, cfg ingest.Config, sink ingest.Sink) (*ingest.Consumer, *nats.Conn, *prometheus.Registry) {
	t.Helper()
	return newConsumerWith(t, s, cfg, ingest.Options{Sink: sink})
}

// newConsumerWith is newConsumer with opts (a clock, say); the logger and
// registry are set here.
func newConsumerWith(t *testing.T, s *server.Server, cfg ingest.Config, opts ingest.Options) (*ingest.Consumer, *nats.Conn, *prometheus.Registry) {
	t.Helper()
	nc, _ := testkit.Connect(t, s)
	reg := prometheus.NewRegistry()
	opts.Logger = slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.Registerer = reg
	c, err := ingest.New(cfg, nc, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, nc, reg
}

// run starts c.Run and returns a function that stops it and waits for it
// to return; cleanup calls that function too.
func run(t *testing.T, c *ingest.Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitTime is how long every ingest test waits for an outcome.
const waitTime = 5 * time.Second

// settled reports nil once the durable consumer has acknowledged every
// message of the events stream and holds none pending.
func settled(c *ingest.Consumer) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		si, ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream != si.State.LastSeq || ci.NumAckPending != 0 || ci.NumPending != 0 {
			return fmt.Errorf("ack floor %d of last seq %d, %d ack pending, %d pending",
				ci.AckFloor.Stream, si.State.LastSeq, ci.NumAckPending, ci.NumPending)
		}
		return nil
	}
}

// firstRun runs a consumer on cfg until it has acknowledged every message
// stored, then stops it and closes its connection, as an instance that
// went away; what it applied is in its Position.
func firstRun(t *testing.T, s *server.Server, cfg ingest.Config) *ingest.Consumer {
	t.Helper()
	c, conn, _ := newConsumer(t, s, cfg, &recorder{})
	stop := run(t, c)
	testkit.WaitFor(t, waitTime, "first run acknowledged every message", settled(c))
	stop()
	conn.Close()
	return c
}

// counted waits until the counter name, with the given label pairs, reaches
// want. A chunk's events and rejected lines are counted just after its
// messages are acknowledged, so settled can hold a moment before they are.
func counted(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	testkit.WaitFor(t, waitTime, name+" counted", func() error {
		if got := metric(t, reg, name, labels...); got != want {
			return fmt.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
		return nil
	})
}

// metric returns the value of the counter name with the given label pairs
// ("k", "v", ...), or 0 when reg has no such series.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// message is one published message: its events, one NDJSON line each.
type message []event.Event

func (m message) data() []byte {
	var b []byte
	for i := range m {
		if i > 0 {
			b = append(b, '\n')
		}
		b = m[i].AppendJSON(b)
	}
	return b
}

// messages returns messages holding the given numbers of events, with
// request ids "<prefix>-<message>-<event>". Some events carry optional
// fields and attrs, so that a pipeline mixing up events' storage shows.
func messages(prefix string, sizes ...int) []message {
	ts := time.Now().Add(-time.Minute).UTC()
	out := make([]message, len(sizes))
	for i, n := range sizes {
		for j := range n {
			ev := event.Event{
				Time: ts, Service: "api", RequestID: fmt.Sprintf("%s-%d-%d", prefix, i, j),
				Method: "POST", Endpoint: "/v1/login", Status: 401,
			}
			if j%2 == 1 {
				ev.SourceIP = netip.MustParseAddr("203.0.113.7")
				ev.User = fmt.Sprintf("user-%d", j)
				ev.LatencyMS, ev.HasLatency = float64(j), true
				ev.Attrs = map[string]string{"n": fmt.Sprint(j)}
			}
			out[i] = append(out[i], ev)
		}
	}
	return out
}

// lines returns the JSON lines of msgs' events, in order.
func lines(msgs ...[]message) []string {
	var out []string
	for _, ms := range msgs {
		for _, m := range ms {
			for i := range m {
				out = append(out, string(m[i].AppendJSON(nil)))
			}
		}
	}
	return out
}

// publish publishes each message to subject and waits for JetStream to
// store it, so that the stream's order is the order given.
func publish(t *testing.T, js jetstream.JetStream, msgs []message) {
	t.Helper()
	for _, m := range msgs {
		publishData(t, js, m.data())
	}
}

func publishData(t *testing.T, js jetstream.JetStream, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// ensureStreams declares Vigil's streams, so that a test can publish before
// a consumer runs.
func ensureStreams(t *testing.T, js jetstream.JetStream, cfg ingest.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ingest.EnsureStreams(ctx, js, cfg, 1); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Sink that keeps every event it gets as its JSON line. hook,
// when set, runs at the start of every Process.
type recorder struct {
	hook  func(ev *event.Event)
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Process(ev *event.Event) {
	if r.hook != nil {
		r.hook(ev)
	}
	line := string(ev.AppendJSON(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
}

func (r *recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// holds reports nil once r holds at least n events.
func (r *recorder) holds(n int) func() error {
	return func() error {
		if got := len(r.Lines()); got < n {
			return fmt.Errorf("sink holds %d events, want %d", got, n)
		}
		return nil
	}
}

// sameLines fails the test unless got equals want, naming the first
// difference.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: event %d = %s, want %s", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d; got:\n%s", what, len(got), len(want), strings.Join(got, "\n"))
	}
}
