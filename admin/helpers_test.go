package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
)

// testBackend is a small real Backend returning fixed data.
type testBackend struct {
	mu        sync.Mutex
	reloads   int
	reloadErr error
	statusErr error
	panicking bool
	silences  map[string]notify.Silence
	nextID    int
}

func (b *testBackend) Status(context.Context) (any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.panicking {
		panic("status exploded: internal detail")
	}
	if b.statusErr != nil {
		return nil, b.statusErr
	}
	return map[string]any{"version": "test", "nats": "connected"}, nil
}

func (b *testBackend) Alerts(context.Context) ([]detect.Alert, error) {
	return []detect.Alert{{Rule: "brute_force_source_ip", Severity: "high", State: detect.StateFiring, Labels: map[string]string{"service": "auth"}}}, nil
}

func (b *testBackend) Rules(context.Context) ([]RuleInfo, error) {
	return []RuleInfo{{Name: "brute_force_source_ip", Kind: "threshold", Severity: "high", Category: "brute_force", Evaluations: 7, Firing: 1}}, nil
}

// Baselines returns one ready and one warming baseline of two rules.
func (b *testBackend) Baselines(context.Context) ([]detect.BaselineStat, error) {
	return []detect.BaselineStat{
		{Rule: "error_spike", Labels: map[string]string{"service": "billing"}, Check: "share",
			HistorySeconds: 1800, Ready: true, Median: 0.004, Spread: 0.001, Threshold: 0.012},
		{Rule: "latency_degradation", Labels: map[string]string{"service": "billing"}, Check: "percentile",
			HistorySeconds: 300},
	}, nil
}

func (b *testBackend) Reload(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reloads++
	return b.reloadErr
}

// ListSilences, CreateSilence and ExpireSilence keep silences in memory,
// with the contract notify.Notifier documents.
func (b *testBackend) ListSilences(context.Context) ([]notify.Silence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []notify.Silence
	for _, s := range b.silences {
		out = append(out, s)
	}
	return out, nil
}

func (b *testBackend) CreateSilence(_ context.Context, s notify.Silence) (notify.Silence, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(s.Matchers) == 0 {
		return notify.Silence{}, &notify.ValidationError{Err: errors.New("give 1 to 32 matchers")}
	}
	if b.silences == nil {
		b.silences = map[string]notify.Silence{}
	}
	b.nextID++
	s.ID = fmt.Sprintf("%032x", b.nextID)
	b.silences[s.ID] = s
	return s, nil
}

func (b *testBackend) ExpireSilence(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.silences[id]; !ok {
		return notify.ErrSilenceNotFound
	}
	return nil
}

// set changes the backend's behaviour under its lock.
func (b *testBackend) set(change func(*testBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	change(b)
}

// syncBuffer is a goroutine-safe log sink that can pick out records.
type syncBuffer struct{ testkit.SyncBuffer }

// lines returns the JSON log records whose msg is msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// testClock is an injected clock that moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a server with one token per scope set, its HTTP endpoint and
// what it reported.
type fixture struct {
	srv     *Server
	url     string
	backend *testBackend
	logs    *syncBuffer
	reg     *prometheus.Registry
	clock   *testClock
	tokens  map[string]string // identity -> presented token

	mu     sync.Mutex
	events []event.Event
}

// identities in matrix order; "unknown" is well-formed but not configured.
var identities = []string{"none", "unknown", "read", "write", "admin"}

func testTokens(t *testing.T) (map[string]string, []TokenConfig) {
	t.Helper()
	toks := map[string]string{"unknown": TokenPrefix + "not-configured-anywhere"}
	var cfgs []TokenConfig
	for _, id := range []struct {
		name   string
		scopes []Scope
	}{{"read", []Scope{ScopeRead}}, {"write", []Scope{ScopeWrite}}, {"admin", []Scope{ScopeAdmin}}} {
		tok, hash := NewToken()
		toks[id.name] = tok
		cfgs = append(cfgs, TokenConfig{Name: id.name + "-token", SHA256: hash, Scopes: id.scopes})
	}
	return toks, cfgs
}

func generousConfig(tokens []TokenConfig) Config {
	cfg := DefaultConfig()
	cfg.Tokens = tokens
	cfg.RateLimit.RequestsPerSecond = 1e6
	cfg.RateLimit.Burst = 1e6
	return cfg
}

// newFixture starts a server over plain HTTP on loopback. mod may adjust the config.
func newFixture(t *testing.T, mod func(*Config), opts ...func(*Options)) *fixture {
	t.Helper()
	toks, cfgs := testTokens(t)
	cfg := generousConfig(cfgs)
	if mod != nil {
		mod(&cfg)
	}
	f := &fixture{backend: &testBackend{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry(), clock: newTestClock(), tokens: toks}
	o := Options{
		Logger:     slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: f.reg,
		Gatherer:   f.reg,
		Now:        f.clock.Now,
		OnAuthFailure: func(ev event.Event) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, ev)
		},
	}
	for _, m := range opts {
		m(&o)
	}
	srv, err := New(cfg, f.backend, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

func (f *fixture) authEvents() []event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]event.Event(nil), f.events...)
}

// do sends one request as identity and returns the response with its body read.
func (f *fixture) do(t *testing.T, identity, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := f.tokens[identity]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// checkErrorBody asserts the one error shape, with the response's request id.
func checkErrorBody(t *testing.T, resp *http.Response, body []byte, wantCode string) {
	t.Helper()
	var eb struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if eb.Error.Code != wantCode || eb.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", eb.Error, wantCode)
	}
	if id := resp.Header.Get("X-Request-Id"); eb.Error.RequestID == "" || eb.Error.RequestID != id {
		t.Errorf("error request_id %q, X-Request-Id %q", eb.Error.RequestID, id)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// counterValue reads one counter series from reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

var errInternalDetail = errors.New("dial tcp 10.1.2.3:4222: connection refused (internal detail)")
