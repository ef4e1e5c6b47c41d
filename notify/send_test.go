package notify

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/notify/receiver"
	"github.com/vigil-sec/vigil/notify/slack"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// The tests in this file run a worker's send loop in a testing/synctest
// bubble, where time is virtual and advances only when every goroutine of the
// bubble waits on time: waits are exact and cost no real time. A
// nats-server's network I/O would keep the bubble from advancing, so these
// workers have no outbox; the receivers are the real ones, reaching their
// endpoints' handlers in memory.

// inMemory is an http.RoundTripper that serves each request with a handler
// in the same goroutine.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func inMemoryHTTP(h http.Handler) *receiver.HTTP {
	return receiver.NewHTTP(&http.Client{Transport: inMemory{h}}, 0, time.Now)
}

// bareWorker returns a worker for recv without an outbox, enough to run
// send; call it inside the bubble.
func bareWorker(t *testing.T, s Settings, rl RateLimit, recv receiver.Receiver) (*worker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.activate([]string{"r"})
	d := workerDeps{cfg: s, metrics: m, now: time.Now, log: slog.New(slog.DiscardHandler)}
	return newWorker(d, "r", recv, newLimiter(rl), s.FloodLimit), reg
}

// reply is one scripted answer of an endpoint.
type reply struct {
	status     int
	retryAfter string
}

// scripted answers the n-th request with replies[n], then repeats the last
// reply, and records when each request came (virtual time in a bubble).
type scripted struct {
	mu      sync.Mutex
	replies []reply
	at      []time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	r := s.replies[min(len(s.at), len(s.replies)-1)]
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	if r.retryAfter != "" {
		w.Header().Set("Retry-After", r.retryAfter)
	}
	w.WriteHeader(r.status)
}

func TestSendWaitsAsTold(t *testing.T) {
	ok := reply{status: http.StatusOK}
	unavailable := reply{status: http.StatusServiceUnavailable}
	cases := []struct {
		name         string
		settings     func(*Settings)
		rate         RateLimit
		replies      []reply
		wantAttempts [2]int // at least, at most
		wantElapsed  [2]time.Duration
		wantErr      string // "" for success
	}{
		{name: "Retry-After wins over the backoff", replies: []reply{{status: http.StatusTooManyRequests, retryAfter: "2"}, ok},
			wantAttempts: [2]int{2, 2}, wantElapsed: [2]time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "backoff doubles, with jitter", replies: []reply{unavailable, unavailable, unavailable, ok},
			// 1s, 2s and 4s, each ±50%.
			wantAttempts: [2]int{4, 4}, wantElapsed: [2]time.Duration{3500 * time.Millisecond, 10500 * time.Millisecond}},
		{name: "backoff stops growing at max_backoff", settings: func(s *Settings) { s.MaxBackoff = 2 * time.Second },
			replies: []reply{unavailable, unavailable, unavailable, unavailable, unavailable, ok},
			// 1s, then 2s four times, each ±50%.
			wantAttempts: [2]int{6, 6}, wantElapsed: [2]time.Duration{4500 * time.Millisecond, 13500 * time.Millisecond}},
		{name: "gives up rather than wait past max_elapsed", settings: func(s *Settings) { s.MaxElapsed = 10 * time.Second },
			replies:      []reply{unavailable},
			wantAttempts: [2]int{3, 5}, wantElapsed: [2]time.Duration{1500 * time.Millisecond, 10 * time.Second}, wantErr: "gave up after"},
		{name: "a Retry-After past max_elapsed gives up at once", settings: func(s *Settings) { s.MaxElapsed = time.Minute },
			replies:      []reply{{status: http.StatusTooManyRequests, retryAfter: "3600"}},
			wantAttempts: [2]int{1, 1}, wantErr: "gave up after 1 attempts"},
		{name: "a permanent failure is not retried", replies: []reply{{status: http.StatusBadRequest}},
			wantAttempts: [2]int{1, 1}, wantErr: "400 Bad Request"},
		{name: "410 is not retried", replies: []reply{{status: http.StatusGone}},
			wantAttempts: [2]int{1, 1}, wantErr: "410 Gone"},
		{name: "an open circuit breaker is waited out", settings: func(s *Settings) {
			s.BreakerFailures, s.BreakerOpenFor = 2, 30*time.Second
			s.InitialBackoff, s.MaxBackoff = 10*time.Millisecond, 10*time.Millisecond
		}, replies: []reply{unavailable, unavailable, ok},
			// 5 to 15ms after the first failure the second opens the
			// breaker for 30s; the third attempt is its half-open probe,
			// at most one 10ms retry later than the breaker's expiry.
			wantAttempts: [2]int{3, 3}, wantElapsed: [2]time.Duration{30*time.Second + 5*time.Millisecond, 30*time.Second + 25*time.Millisecond}},
		{name: "the rate limit paces attempts", settings: func(s *Settings) {
			s.InitialBackoff, s.MaxBackoff = 10*time.Millisecond, 10*time.Millisecond
		}, rate: RateLimit{PerSecond: 1, Burst: 1}, replies: []reply{unavailable, ok},
			wantAttempts: [2]int{2, 2}, wantElapsed: [2]time.Duration{time.Second, time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := DefaultSettings()
				s.BreakerFailures = 100
				if tc.settings != nil {
					tc.settings(&s)
				}
				ep := &scripted{replies: tc.replies}
				recv, err := webhook.New(webhook.Config{URL: "http://siem.test/hook"}, inMemoryHTTP(ep), time.Now)
				if err != nil {
					t.Fatal(err)
				}
				w, _ := bareWorker(t, s, tc.rate, recv)
				start := time.Now()
				note := &receiver.Notification{ID: "n1", Receiver: "r", Kind: receiver.KindFiring,
					Alerts: []detect.Alert{testAlert("fp", detect.TransitionFiring)}, Created: start}
				_, attempts, err := w.send(t.Context(), note, nil)
				elapsed := time.Since(start)

				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("send: %v", err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Fatalf("send = %v, want an error containing %q", err, tc.wantErr)
				}
				if attempts != len(ep.at) || attempts < tc.wantAttempts[0] || attempts > tc.wantAttempts[1] {
					t.Errorf("%d attempts (%d requests), want %d to %d", attempts, len(ep.at), tc.wantAttempts[0], tc.wantAttempts[1])
				}
				if elapsed < tc.wantElapsed[0] || elapsed > tc.wantElapsed[1] {
					t.Errorf("took %s, want %s to %s", elapsed, tc.wantElapsed[0], tc.wantElapsed[1])
				}
				if _, giveUp := errors.AsType[*GiveUpError](err); giveUp != strings.Contains(tc.wantErr, "gave up") {
					t.Errorf("err = %v: GiveUpError %v, want %v", err, giveUp, !giveUp)
				}
			})
		})
	}
}

func TestSlackRetryAfterIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSlack{reply: func(method string, n int, w http.ResponseWriter) bool {
			if n == 0 {
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}}
		mux := http.NewServeMux()
		mux.Handle("/api/chat.postMessage", fs.handler("chat.postMessage"))
		recv, err := slack.New(slack.Config{Token: secret.New("xoxb-test-token", "test"), Channel: "#security-alerts",
			APIURL: "http://slack.test/api/"}, inMemoryHTTP(mux), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		w, reg := bareWorker(t, DefaultSettings(), DefaultSettings().RateLimits.Slack, recv)
		note := &receiver.Notification{ID: "n1", Receiver: "r", Kind: receiver.KindFiring,
			Alerts: []detect.Alert{testAlert("fp1", detect.TransitionFiring)}, Created: time.Now()}
		res, attempts, err := w.send(t.Context(), note, nil)
		if err != nil || attempts != 2 || res.Ref.TS == "" {
			t.Fatalf("send = %+v, %d attempts, %v; want the message posted on the second attempt", res, attempts, err)
		}
		calls := fs.seen()
		if gap := calls[1].at.Sub(calls[0].at); gap != 2*time.Second {
			t.Errorf("second attempt %s after the 429, want the 2s of Retry-After", gap)
		}
		if calls[1].method != "chat.postMessage" || !strings.Contains(calls[1].form.Get("text"), "brute_force_user") {
			t.Errorf("calls = %+v, want the alert posted after the 429", calls)
		}
		if got := counterValue(t, reg, "vigil_notifications_total", map[string]string{"receiver": "r", "outcome": "retried"}); got != 1 {
			t.Errorf("retried = %v, want 1", got)
		}
	})
}
