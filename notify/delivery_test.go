package notify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/notify/slack"
	"github.com/vigil-sec/vigil/notify/webhook"
)

func newSigningSecret(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key), key
}

func webhookConfig(name, url, signing string) ReceiverConfig {
	return ReceiverConfig{Name: name, Webhook: &webhook.Config{URL: url, Secret: secret.New(signing, "test")}}
}

func oneRoute(receivers ...string) []RouteConfig {
	return []RouteConfig{{Receivers: receivers}}
}

// verify checks a Standard Webhooks signature with its own HMAC, not the
// package's Sign.
func verify(t *testing.T, key []byte, r request) {
	t.Helper()
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(r.body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	got := r.header.Get("webhook-signature")
	if !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("webhook-signature %q, want %q", got, want)
	}
}

func TestWebhookRetriedThroughFive503sArrivesOnce(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	signing, key := newSigningSecret(t)
	ep := newEndpoint(t, func(n int, _ http.ResponseWriter) int {
		if n < 5 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := Config{Receivers: []ReceiverConfig{webhookConfig("siem", ep.URL, signing)}, Routes: oneRoute("siem"), Notify: testSettings()}
	h := start(t, cfg, js)

	if err := h.n.Notify(t.Context(), testAlert("fp1", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "six attempts and an empty outbox", all(count("requests", 6, ep.count), queued(h, 0)))
	h.stop()

	reqs := ep.requests()
	if len(reqs) != 6 {
		t.Fatalf("endpoint saw %d requests, want 5 failures and 1 success", len(reqs))
	}
	id := reqs[0].header.Get("webhook-id")
	if !strings.HasPrefix(id, "msg_") {
		t.Errorf("webhook-id %q lacks the msg_ prefix", id)
	}
	for i, r := range reqs {
		if got := r.header.Get("webhook-id"); got != id {
			t.Errorf("attempt %d: webhook-id %q, want %q on every attempt", i+1, got, id)
		}
		if string(r.body) != string(reqs[0].body) {
			t.Errorf("attempt %d: body differs from the first attempt", i+1)
		}
		verify(t, key, r)
	}
	var p webhook.Payload
	if err := json.Unmarshal(reqs[5].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "alert.firing" || p.Data.ID != id || len(p.Data.Alerts) != 1 || p.Data.Alerts[0].Fingerprint != "fp1" {
		t.Errorf("payload = %+v", p)
	}
	if got := counterValue(t, h.reg, "vigil_notifications_total", map[string]string{"receiver": "siem", "outcome": "retried"}); got != 5 {
		t.Errorf("retried = %v, want 5", got)
	}
	if got := counterValue(t, h.reg, "vigil_notifications_total", map[string]string{"receiver": "siem", "outcome": "delivered"}); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
}

func logConfig(name string) ReceiverConfig {
	return ReceiverConfig{Name: name, Log: &jsonlog.Config{}}
}

// deadLetter returns the last dead letter for a receiver.
func deadLetter(t *testing.T, js jetstream.JetStream, recv string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(t.Context(), DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), deadPrefix+recv)
	if err != nil {
		t.Fatalf("no dead letter for %s: %v", recv, err)
	}
	return m
}

func TestFailuresEndInDeadLetters(t *testing.T) {
	cases := []struct {
		name         string
		status       int
		maxElapsed   time.Duration
		wantAttempts int // 0: at least 2
		wantReason   string
		wantDisabled float64
		nextArrives  bool
	}{
		{name: "400 is permanent", status: http.StatusBadRequest, wantAttempts: 1, wantReason: "400 Bad Request", nextArrives: true},
		{name: "410 disables the receiver", status: http.StatusGone, wantAttempts: 1, wantReason: "410 Gone", wantDisabled: 1},
		{name: "503 until max_elapsed", status: http.StatusServiceUnavailable, maxElapsed: 300 * time.Millisecond, wantReason: "gave up after", nextArrives: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testkit.RunNATS(t)
			_, js := testkit.Connect(t, srv)
			ep := newEndpoint(t, func(int, http.ResponseWriter) int { return tc.status })
			s := testSettings()
			if tc.maxElapsed > 0 {
				s.MaxElapsed = tc.maxElapsed
			}
			cfg := Config{Receivers: []ReceiverConfig{webhookConfig("siem", ep.URL, "")}, Routes: oneRoute("siem"), Notify: s}
			h := start(t, cfg, js)
			if err := h.n.Notify(t.Context(), testAlert("fp1", detect.TransitionFiring)); err != nil {
				t.Fatal(err)
			}
			labels := map[string]string{"receiver": "siem"}
			testkit.WaitFor(t, 10*time.Second, "a dead letter", metricIs(h.reg, "vigil_notifications_dead_total", labels, 1))
			dl := deadLetter(t, js, "siem")
			if r := dl.Header.Get(HeaderReason); !strings.Contains(r, tc.wantReason) {
				t.Errorf("reason %q, want it to mention %q", r, tc.wantReason)
			}
			var d delivery
			if err := json.Unmarshal(dl.Data, &d); err != nil || d.Alert.Fingerprint != "fp1" {
				t.Errorf("dead letter body = %s (%v), want the delivery of fp1", dl.Data, err)
			}
			if tc.wantAttempts > 0 && ep.count() != tc.wantAttempts {
				t.Errorf("%d attempts, want %d", ep.count(), tc.wantAttempts)
			}
			if tc.wantAttempts == 0 && ep.count() < 2 {
				t.Errorf("%d attempts, want retries", ep.count())
			}
			if got := counterValue(t, h.reg, "vigil_notify_receiver_disabled", labels); got != tc.wantDisabled {
				t.Errorf("disabled = %v, want %v", got, tc.wantDisabled)
			}
			if !tc.nextArrives && tc.wantDisabled == 1 {
				// A disabled receiver leaves new deliveries queued for after reload.
				before := ep.count()
				if err := h.n.Notify(t.Context(), testAlert("fp2", detect.TransitionFiring)); err != nil {
					t.Fatal(err)
				}
				testkit.WaitFor(t, 5*time.Second, "the delivery to wait in the outbox", queued(h, 1))
				if ep.count() != before {
					t.Errorf("disabled receiver was called again")
				}
				if !strings.Contains(h.logs.String(), "receiver disabled until the configuration is reloaded") {
					t.Errorf("no loud log line about the disabled receiver")
				}
			}
			if tc.nextArrives {
				if err := h.n.Notify(t.Context(), testAlert("fp2", detect.TransitionFiring)); err != nil {
					t.Fatal(err)
				}
				testkit.WaitFor(t, 5*time.Second, "the next alert to be attempted", count("requests", tc.wantAttempts+1, ep.count))
			}
		})
	}
}

func TestSlowReceiverDoesNotDelayOthers(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	release := make(chan struct{})
	slow := newEndpoint(t, func(int, http.ResponseWriter) int {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		return http.StatusOK
	})
	fast := newEndpoint(t, nil)
	s := testSettings()
	s.AttemptTimeout, s.AckWait = 6*time.Second, 20*time.Second
	cfg := Config{
		Receivers: []ReceiverConfig{webhookConfig("slow", slow.URL, ""), webhookConfig("fast", fast.URL, "")},
		Routes:    oneRoute("slow", "fast"),
		Notify:    s,
	}
	h := start(t, cfg, js)
	t.Cleanup(func() { close(release) }) // runs before the notifier stops
	for _, fp := range []string{"a", "b", "c"} {
		if err := h.n.Notify(t.Context(), testAlert(fp, detect.TransitionFiring)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 2*time.Second, "the fast receiver to get all three alerts", count("requests", 3, fast.count))
	if n := slow.count(); n != 1 {
		t.Errorf("slow receiver saw %d requests, want the first one still in progress", n)
	}
}

func TestSecretsStayOutOfLogsAndDeadLetters(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String() + "/services/T0/B0/WEBHOOK-SECRET-PART"
	l.Close() // connection refused from now on
	const token = "xoxb-TOKEN-SECRET-PART"
	fs := newFakeSlack(t, func(string, int, http.ResponseWriter) bool { return false })
	s := testSettings()
	s.MaxElapsed = 200 * time.Millisecond
	cfg := Config{
		Receivers: []ReceiverConfig{
			{Name: "hook", Slack: &slack.Config{WebhookURL: secret.New(deadURL, "test")}},
			{Name: "bot", Slack: &slack.Config{Token: secret.New(token, "test"), Channel: "#a", APIURL: fs.GetAPIURL()}},
		},
		Routes: oneRoute("hook", "bot"),
		Notify: s,
	}
	h := start(t, cfg, js)
	if err := h.n.Notify(t.Context(), testAlert("fp", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the dead letter", all(
		metricIs(h.reg, "vigil_notifications_dead_total", map[string]string{"receiver": "hook"}, 1),
		count("Slack calls", 1, fs.callCount)))
	h.stop()
	logs := h.logs.String()
	reason := deadLetter(t, js, "hook").Header.Get(HeaderReason)
	if !strings.Contains(logs, "notification attempt failed; retrying") || !strings.Contains(reason, "connection refused") {
		t.Fatalf("expected retries in the logs and the cause in the reason; reason %q", reason)
	}
	for _, leak := range []string{"WEBHOOK-SECRET-PART", token} {
		if strings.Contains(logs, leak) || strings.Contains(reason, leak) {
			t.Errorf("%q leaked into logs or the dead-letter reason", leak)
		}
	}
	if stacks := goroutines(); strings.Contains(stacks, "notify.(*worker).run") || strings.Contains(stacks, "notify.(*Notifier).maintain") {
		t.Errorf("notifier goroutines outlive Run:\n%s", stacks)
	}
}

func goroutines() string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return b.String()
}

func TestReloadReenablesAGoneReceiver(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sameURL   bool // the endpoint came back where it was; the config is unchanged
		wantCalls int  // at the first endpoint
	}{
		{name: "fixed URL", wantCalls: 1},
		{name: "same config, endpoint back", sameURL: true, wantCalls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testkit.RunNATS(t)
			_, js := testkit.Connect(t, srv)
			gone := newEndpoint(t, func(n int, _ http.ResponseWriter) int {
				if n == 0 || !tc.sameURL {
					return http.StatusGone
				}
				return http.StatusOK
			})
			cfg := Config{Receivers: []ReceiverConfig{webhookConfig("siem", gone.URL, ""), logConfig("console")},
				Routes: oneRoute("siem", "console"), Notify: testSettings()}
			h := start(t, cfg, js)
			for _, fp := range []string{"first", "second"} {
				if err := h.n.Notify(t.Context(), testAlert(fp, detect.TransitionFiring)); err != nil {
					t.Fatal(err)
				}
			}
			disabled := map[string]string{"receiver": "siem"}
			testkit.WaitFor(t, 5*time.Second, "the receiver to be disabled", metricIs(h.reg, "vigil_notify_receiver_disabled", disabled, 1))
			if got := h.n.DisabledReceivers(); !slices.Equal(got, []string{"siem"}) {
				t.Errorf("DisabledReceivers = %v, want [siem]", got)
			}
			h.stop()

			// Reload: a new Notifier (as the daemon builds while a receiver
			// is disabled), on the same registry.
			fixed := gone
			if !tc.sameURL {
				fixed = newEndpoint(t, nil)
				cfg.Receivers[0] = webhookConfig("siem", fixed.URL, "")
			}
			n, err := New(t.Context(), cfg, js, Options{Registerer: h.reg, LogWriter: io.Discard})
			if err != nil {
				t.Fatalf("New on reload: %v", err)
			}
			if got := counterValue(t, h.reg, "vigil_notify_receiver_disabled", disabled); got != 0 || len(n.DisabledReceivers()) != 0 {
				t.Errorf("disabled = %v, DisabledReceivers = %v after reload, want none", got, n.DisabledReceivers())
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- n.Run(ctx) }()
			testkit.WaitFor(t, 5*time.Second, "the queued alert after reload", func() error {
				reqs := fixed.requests()
				if len(reqs) == 0 || !strings.Contains(string(reqs[len(reqs)-1].body), `"fingerprint":"second"`) {
					return fmt.Errorf("%d requests, the last not for the alert queued while disabled", len(reqs))
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if gone.count() != tc.wantCalls {
				t.Errorf("the first endpoint was called %d times, want %d", gone.count(), tc.wantCalls)
			}
		})
	}
}

func TestReceiversTakeTheirKindsDefaultRate(t *testing.T) {
	s := testSettings()
	s.RateLimits.Webhook = RateLimit{PerSecond: 5, Burst: 2}
	own := webhookConfig("own", "http://127.0.0.1:1/hook", "")
	own.RateLimit = &RateLimit{PerSecond: 0.5, Burst: 1}
	rcs := []ReceiverConfig{webhookConfig("siem", "http://127.0.0.1:1/hook", ""), own, logConfig("console")}
	opts := Options{}.withDefaults()
	workers, err := buildWorkers(rcs, workerDeps{cfg: s, now: opts.Now, log: opts.Logger}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]RateLimit{"siem": {5, 2}, "own": {0.5, 1}, "console": {}}
	for _, w := range workers {
		got := RateLimit{PerSecond: float64(w.limiter.Limit()), Burst: w.limiter.Burst()}
		if w.name == "console" {
			if w.limiter.Limit() != rate.Inf {
				t.Errorf("console: limit %v, want unlimited", w.limiter.Limit())
			}
			continue
		}
		if got != want[w.name] {
			t.Errorf("%s: rate %+v, want %+v", w.name, got, want[w.name])
		}
	}
}

func TestStreamsTakeTheReplicasTheyAreGiven(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	// A single server cannot hold three replicas: New must ask for them.
	if _, err := New(t.Context(), cfg, js, Options{Replicas: 3}); err == nil || !strings.Contains(err.Error(), OutboxStream) {
		t.Fatalf("New with 3 replicas on one server: err = %v, want the outbox refused", err)
	}
	if _, err := New(t.Context(), cfg, js, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{OutboxStream, DeadLetterStream, "KV_" + AlertsBucket, "KV_" + SilencesBucket} {
		st, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 1 {
			t.Errorf("%s has %d replicas, want 1 by default", name, r)
		}
	}
}

// A cluster member that lost its pin (paused past failover_after, cut off)
// must not deliver what the active member delivers: while MayDeliver says
// no, nothing is sent, whether the delivery was waiting in the outbox or
// between two attempts, and it stays queued for whoever may deliver.
func TestFencedMemberLeavesDeliveryToTheActive(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	var may atomic.Bool
	var asked atomic.Int64
	ep := newEndpoint(t, func(n int, _ http.ResponseWriter) int {
		if n == 0 {
			may.Store(false) // the pin moves while the first attempt fails
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := Config{Receivers: []ReceiverConfig{webhookConfig("hook", ep.URL, "")}, Routes: oneRoute("hook"), Notify: testSettings()}
	h := start(t, cfg, js, func(o *Options) {
		o.MayDeliver = func() bool { asked.Add(1); return may.Load() }
	})
	askedAgain := func(n int64) {
		t.Helper()
		from := asked.Load()
		testkit.WaitUntil(t, 10*time.Second, "the worker asking whether it may deliver", func() bool { return asked.Load() >= from+n })
	}

	if err := h.n.Notify(t.Context(), testAlert("a", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	askedAgain(2)
	if n := ep.count(); n != 0 {
		t.Fatalf("a fenced member sent %d requests, want none", n)
	}
	testkit.WaitFor(t, 5*time.Second, "the delivery still queued", queued(h, 1))

	may.Store(true) // pinned: the first attempt fails, and the pin moves away
	testkit.WaitFor(t, 5*time.Second, "the first attempt", count("requests", 1, ep.count))
	askedAgain(2)
	if n := ep.count(); n != 1 {
		t.Fatalf("the member retried %d times after losing its pin, want no retry", n-1)
	}
	testkit.WaitFor(t, 5*time.Second, "the delivery back in the outbox", queued(h, 1))

	may.Store(true)
	testkit.WaitFor(t, 5*time.Second, "delivered once pinned again", all(count("requests", 2, ep.count), queued(h, 0)))
}

// TestAttemptLongerThanAckWaitIsNotHandedOutAgain: a receiver that takes
// longer to answer than ack_wait must not get the delivery a second time
// from another instance (a cluster member) while the first attempt is
// still waiting for it: the worker marks the delivery in progress during
// the attempt. On a cluster ack_wait is failover_after, and an attempt may
// take up to attempt_timeout.
func TestAttemptLongerThanAckWaitIsNotHandedOutAgain(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, jsA := testkit.Connect(t, srv)
	_, jsB := testkit.Connect(t, srv)
	var answered atomic.Bool
	slow := newEndpoint(t, func(n int, _ http.ResponseWriter) int {
		if n == 0 {
			<-time.After(3 * time.Second) // the receiver is slow: three times ack_wait
			answered.Store(true)
		}
		return http.StatusOK
	})
	s := testSettings()
	s.AttemptTimeout, s.AckWait = 6*time.Second, time.Second
	cfg := Config{Receivers: []ReceiverConfig{webhookConfig("slow", slow.URL, "")}, Routes: oneRoute("slow"), Notify: s}
	a := start(t, cfg, jsA)
	b := start(t, cfg, jsB) // a second instance, pulling the same receiver's queue
	if err := a.n.Notify(t.Context(), testAlert("fp", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	delivered := func() float64 {
		var sum float64
		for _, h := range []*harness{a, b} {
			v, _ := seriesValue(h.reg, "vigil_notifications_total", map[string]string{"receiver": "slow", "outcome": deliveryDelivered})
			sum += v
		}
		return sum
	}
	testkit.WaitFor(t, 10*time.Second, "the slow attempt answered and acknowledged", func() error {
		if !answered.Load() || delivered() == 0 {
			return fmt.Errorf("answered %v, delivered %v", answered.Load(), delivered())
		}
		return queued(a, 0)()
	})
	if n := slow.count(); n != 1 {
		t.Errorf("the receiver got the delivery %d times, want once: it was handed out again while the first attempt was under way", n)
	}
}
