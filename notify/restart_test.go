package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify/alertmanager"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// dedupReceiver is a webhook endpoint that processes each webhook-id once,
// as the Standard Webhooks spec asks receivers to.
type dedupReceiver struct {
	mu        sync.Mutex
	processed map[string]int // webhook-id -> times processed
	dups      int
	alerts    map[string]bool // fingerprints processed
}

func (d *dedupReceiver) handle(r *http.Request) {
	var p webhook.Payload
	_ = json.NewDecoder(r.Body).Decode(&p)
	d.mu.Lock()
	defer d.mu.Unlock()
	id := r.Header.Get("webhook-id")
	if _, ok := d.processed[id]; ok {
		d.dups++
		return
	}
	d.processed[id]++
	for _, a := range p.Data.Alerts {
		d.alerts[a.Fingerprint] = true
	}
}

func (d *dedupReceiver) unique() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.processed)
}

func TestPendingDeliveriesSurviveACrash(t *testing.T) {
	srv := testkit.RunNATS(t)
	ncA, jsA := testkit.Connect(t, srv)
	const total, beforeCrash = 100, 10
	recv := &dedupReceiver{processed: map[string]int{}, alerts: map[string]bool{}}
	var (
		mu       sync.Mutex
		requests int
	)
	gate := make(chan struct{})
	ep := newEndpoint(t, nil)
	ep.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n > beforeCrash {
			<-gate // the crash happens while this request is in flight
		}
		recv.handle(r)
		w.WriteHeader(http.StatusNoContent)
	})
	s := testSettings()
	s.FloodLimit = 1000
	s.AckWait = 1500 * time.Millisecond
	cfg := Config{
		Receivers: []ReceiverConfig{{Name: "siem", Webhook: &webhook.Config{URL: ep.URL}, RateLimit: &RateLimit{PerSecond: 1000, Burst: 100}}},
		Routes:    oneRoute("siem"),
		Notify:    s,
	}
	a := start(t, cfg, jsA)
	for i := range total {
		if err := a.n.Notify(t.Context(), testAlert(fmt.Sprintf("fp%03d", i), detect.TransitionFiring)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the request in flight at the crash", count("requests", beforeCrash+1, func() int {
		mu.Lock()
		defer mu.Unlock()
		return requests
	}))
	// Crash: the connection goes away without draining; the in-flight
	// request completes but its acknowledgement is lost.
	ncA.Close()
	close(gate)
	a.stop()

	_, jsB := testkit.Connect(t, srv)
	b := start(t, cfg, jsB)
	testkit.WaitFor(t, 10*time.Second, "all alerts processed once and an empty outbox", all(count("webhook ids", total, recv.unique), queued(b, 0)))
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.alerts) != total {
		t.Errorf("%d distinct alerts arrived, want %d", len(recv.alerts), total)
	}
	for id, n := range recv.processed {
		if n != 1 {
			t.Errorf("webhook-id %s processed %d times", id, n)
		}
	}
	t.Logf("duplicates dropped by the receiver: %d", recv.dups)
}

func TestFireRestartResolveNotifiesEachReceiverOnce(t *testing.T) {
	srv := testkit.RunNATS(t)
	ncA, jsA := testkit.Connect(t, srv)
	hook := newEndpoint(t, nil)
	am := newEndpoint(t, nil)
	fs := newFakeSlack(t, nil)
	cfg := Config{
		Receivers: []ReceiverConfig{
			webhookConfig("siem", hook.URL, ""),
			slackReceiver("oncall", fs),
			{Name: "am", Alertmanager: &alertmanager.Config{URLs: []string{am.URL}}},
			logConfig("console"),
		},
		Routes: []RouteConfig{
			{Match: map[string]StringList{"severity": {"high", "critical"}}, Receivers: []string{"oncall", "siem", "am"}, Continue: true},
			{Receivers: []string{"console"}},
		},
		Notify: testSettings(),
	}
	firing := testAlert("fp-restart", detect.TransitionFiring)
	a := start(t, cfg, jsA)
	if err := a.n.Notify(t.Context(), firing); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the firing at every receiver", all(count("webhook requests", 1, hook.count), count("Alertmanager posts", 1, am.count),
		count("Slack calls", 1, fs.callCount), delivered(a, 1)))
	a.stop()
	ncA.Close()

	_, jsB := testkit.Connect(t, srv)
	b := start(t, cfg, jsB)
	got, err := b.n.FiringAlerts(t.Context())
	if err != nil || len(got) != 1 || got[0].Fingerprint != "fp-restart" || !got[0].StartsAt.Equal(firing.StartsAt) {
		t.Fatalf("FiringAlerts after restart = %+v, %v; want the firing alert with its start", got, err)
	}
	// The engine, re-seeded or not, may emit the firing again.
	refire := firing
	refire.StartsAt = firing.StartsAt.Add(time.Minute)
	if err := b.n.Notify(t.Context(), refire); err != nil {
		t.Fatal(err)
	}
	resolved := testAlert("fp-restart", detect.TransitionResolved)
	for range 2 {
		if err := b.n.Notify(t.Context(), resolved); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the resolve at every receiver", all(count("webhook requests", 2, hook.count), count("Alertmanager posts", 2, am.count),
		count("Slack calls", 2, fs.callCount), delivered(b, 1)))
	b.stop()

	var p webhook.Payload
	if err := json.Unmarshal(hook.requests()[1].body, &p); err != nil || p.Type != "alert.resolved" {
		t.Errorf("second webhook = %s, want alert.resolved", hook.requests()[1].body)
	}
	var ams []alertmanager.Alert
	if err := json.Unmarshal(am.requests()[1].body, &ams); err != nil || len(ams) != 1 || !ams[0].EndsAt.Equal(resolved.EndsAt) {
		t.Errorf("second Alertmanager post = %s, want endsAt %s", am.requests()[1].body, resolved.EndsAt)
	}
	calls := fs.seen()
	if calls[0].method != "chat.postMessage" || calls[1].method != "chat.update" ||
		calls[1].form.Get("ts") != "1700000000.000001" || calls[1].form.Get("channel") != slackChannelID {
		t.Errorf("Slack calls = %s %v, %s %v; want the original message updated in place",
			calls[0].method, calls[0].form, calls[1].method, calls[1].form)
	}
	if !strings.Contains(b.out.String(), `"kind":"resolved"`) || !strings.Contains(a.out.String(), `"kind":"firing"`) {
		t.Errorf("log receiver lines: before %q after %q", a.out.String(), b.out.String())
	}
	if got, _ := b.n.FiringAlerts(t.Context()); len(got) != 0 {
		t.Errorf("FiringAlerts after resolve = %+v, want none", got)
	}
}

func TestReceiverAddedAfterAnAlertFiredHearsOfItAtOnce(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	before := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	a := start(t, before, js)
	if err := a.n.Notify(t.Context(), testAlert("fp", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the firing at the console", delivered(a, 1))
	a.stop()

	// A reload (or a restart) adds a webhook receiver. Nothing new fires;
	// the alert's next repeat is hours away.
	hook := newEndpoint(t, nil)
	after := before
	after.Receivers = []ReceiverConfig{logConfig("console"), webhookConfig("siem", hook.URL, "")}
	after.Routes = oneRoute("console", "siem")
	b := start(t, after, js)
	testkit.WaitFor(t, 5*time.Second, "the firing at the new receiver", count("requests at the new receiver", 1, hook.count))
	var p webhook.Payload
	if err := json.Unmarshal(hook.requests()[0].body, &p); err != nil || p.Type != "alert.firing" || p.Data.Alerts[0].Fingerprint != "fp" {
		t.Fatalf("new receiver got %s, want the firing of fp", hook.requests()[0].body)
	}
	// The resolve reaches it too, and the console hears nothing twice.
	if err := b.n.Notify(t.Context(), testAlert("fp", detect.TransitionResolved)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the resolve at both receivers", delivered(b, 1))
	if hook.count() != 2 {
		t.Errorf("new receiver got %d requests, want firing and resolve", hook.count())
	}
	if r := records(t, b.out.String()); r[0].Kind != "resolved" {
		t.Errorf("console got %s after the reload, want only the resolve", r[0].Kind)
	}
}
