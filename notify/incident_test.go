package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// incidentAlert is an alert of rule with fingerprint fp in incident inc1,
// whose severity is sev.
func incidentAlert(fp, rule, sev string, tr detect.Transition) detect.Alert {
	a := testAlert(fp, tr)
	a.Rule, a.IncidentID, a.IncidentSeverity = rule, "inc1", sev
	return a
}

// headerOf returns the first section's text of a Slack call's blocks.
func headerOf(t *testing.T, c slackCall) string {
	t.Helper()
	var bs []struct {
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal([]byte(c.form.Get("blocks")), &bs); err != nil || len(bs) == 0 {
		t.Fatalf("blocks %q: %v", c.form.Get("blocks"), err)
	}
	return bs[0].Text.Text
}

func TestIncidentAlertsShareOneSlackThread(t *testing.T) {
	s := newSlackSetup(t)
	fs := s.fs
	s.notify(t, incidentAlert("fp-ip", "brute_force_source_ip", "high", detect.TransitionFiring), 1)
	s.notify(t, incidentAlert("fp-user", "brute_force_user", "high", detect.TransitionFiring), 2)
	// A third rule joins; the engine raised the incident to critical.
	s.notify(t, incidentAlert("fp-takeover", "account_takeover", "critical", detect.TransitionFiring), 4)

	calls := fs.seen()
	top := calls[0]
	if top.method != "chat.postMessage" || top.form.Get("thread_ts") != "" || !strings.Contains(headerOf(t, top), "*INCIDENT*  ·  *HIGH*") {
		t.Fatalf("first call = %s %v, want a top-level message announcing a high incident", top.method, top.form)
	}
	topTS := "1700000000.000001"
	reply := calls[1]
	if reply.method != "chat.postMessage" || reply.form.Get("thread_ts") != topTS || reply.form.Get("channel") != slackChannelID {
		t.Errorf("second alert = %s in thread %q of %q, want a reply in the incident's thread", reply.method, reply.form.Get("thread_ts"), reply.form.Get("channel"))
	}
	update, escalation := calls[2], calls[3]
	if update.method != "chat.update" || update.form.Get("ts") != topTS || !strings.Contains(headerOf(t, update), "*INCIDENT*  ·  *CRITICAL*") ||
		!strings.Contains(headerOf(t, update), "3 alerts from 3 rules") {
		t.Errorf("on escalation: %s of %q saying %q, want the top message updated to critical with 3 rules", update.method, update.form.Get("ts"), headerOf(t, update))
	}
	if escalation.method != "chat.postMessage" || escalation.form.Get("thread_ts") != topTS {
		t.Errorf("escalating alert = %s in thread %q, want a reply in the thread", escalation.method, escalation.form.Get("thread_ts"))
	}

	// A restart: the thread is kept in alert state.
	s.h.stop()
	s.nc.Close()
	_, js := testkit.Connect(t, s.srv)
	s.h = start(t, s.cfg, js)
	s.notify(t, incidentAlert("fp-ip", "brute_force_source_ip", "critical", detect.TransitionResolved), 5)
	s.notify(t, incidentAlert("fp-user", "brute_force_user", "critical", detect.TransitionResolved), 6)
	// The last alert's resolve marks the incident resolved, then replies.
	s.notify(t, incidentAlert("fp-takeover", "account_takeover", "critical", detect.TransitionResolved), 8)
	calls = fs.seen()
	for i, c := range calls[4:] {
		if c.method == "chat.postMessage" && c.form.Get("thread_ts") != topTS {
			t.Errorf("call %d after the restart: a message outside the incident's thread (%v)", 4+i, c.form)
		}
	}
	if c := calls[6]; c.method != "chat.update" || c.form.Get("ts") != topTS || !strings.Contains(headerOf(t, c), "*INCIDENT RESOLVED*  ·  *CRITICAL*") {
		t.Errorf("after the last resolve: %s saying %q, want the top message marked resolved", c.method, headerOf(t, c))
	}
}

func TestRedeliveredThreadReplyIsNotPostedTwice(t *testing.T) {
	s := newSlackSetup(t)
	h, fs, js := s.h, s.fs, s.h.n.js
	s.notify(t, incidentAlert("fp-ip", "brute_force_source_ip", "high", detect.TransitionFiring), 1)
	s.notify(t, incidentAlert("fp-user", "brute_force_user", "high", detect.TransitionFiring), 2)
	// The reply's delivery comes again, as after a stop between recording
	// the thread and recording the alert's own state: the alert's record
	// is gone, the thread's names the delivery.
	var d delivery
	msg := lastDelivery(t, h, "oncall")
	if err := json.Unmarshal(msg, &d); err != nil {
		t.Fatal(err)
	}
	if err := h.n.res.alerts.Purge(t.Context(), receiverKey(d.Alert.Fingerprint, "oncall")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: deliverPrefix + "oncall", Data: msg}, jetstream.WithMsgID("again-"+d.ID)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the redelivery skipped",
		metricIs(h.reg, "vigil_notifications_total", map[string]string{"receiver": "oncall", "outcome": "skipped"}, 1))
	if n := fs.callCount(); n != 2 {
		t.Errorf("%d Slack calls, want the reply posted once", n)
	}
}

// lastDelivery rebuilds, from alert state, the delivery Notify queued to
// recv for fp-user's firing: delivery ids derive from that state.
func lastDelivery(t *testing.T, h *harness, recv string) []byte {
	t.Helper()
	rec, _, err := h.n.state.alert(t.Context(), "fp-user")
	if err != nil || rec == nil {
		t.Fatalf("alert state of fp-user: %+v, %v", rec, err)
	}
	d := newDelivery(rec, rec.Alert, detect.TransitionFiring, recv, rec.LastNotified)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPerIncidentRoutePagesOncePerIncident(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, jsA := testkit.Connect(t, srv)
	pager := newEndpoint(t, nil)
	cfg := Config{
		Receivers: []ReceiverConfig{webhookConfig("pager", pager.URL, ""), logConfig("console")},
		Routes: []RouteConfig{
			{Receivers: []string{"pager"}, PerIncident: true, Continue: true},
			{Receivers: []string{"console"}},
		},
		Notify: testSettings(),
	}
	a := start(t, cfg, jsA)
	steps := []struct {
		alert         detect.Alert
		pager, sent   int // requests at the pager, notifications at the console, after the step
		pagerSeverity string
	}{
		{incidentAlert("fp-ip", "brute_force_source_ip", "high", detect.TransitionFiring), 1, 1, "high"},
		{incidentAlert("fp-user", "brute_force_user", "high", detect.TransitionFiring), 1, 2, ""},
		{incidentAlert("fp-takeover", "account_takeover", "critical", detect.TransitionFiring), 2, 3, "critical"},
		{incidentAlert("fp-user", "brute_force_user", "critical", detect.TransitionResolved), 2, 4, ""},
		{incidentAlert("fp-ip", "brute_force_source_ip", "critical", detect.TransitionResolved), 3, 5, "critical"},
	}
	for i, s := range steps {
		if err := a.n.Notify(t.Context(), s.alert); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 5*time.Second, "step delivered", all(count("console notifications", s.sent, a.notifications), queued(a, 0)))
		if got := pager.count(); got != s.pager {
			t.Fatalf("step %d (%s %s): %d requests at the pager, want %d", i, s.alert.Fingerprint, s.alert.Transition, got, s.pager)
		}
		if s.pagerSeverity == "" {
			continue
		}
		var p webhook.Payload
		if err := json.Unmarshal(pager.requests()[s.pager-1].body, &p); err != nil {
			t.Fatal(err)
		}
		if got := p.Data.Alerts[0]; got.IncidentID != "inc1" || got.IncidentSeverity != s.pagerSeverity || got.Fingerprint != s.alert.Fingerprint {
			t.Errorf("step %d: pager told of %s in incident %q (%s), want %s in inc1 (%s)", i, got.Fingerprint, got.IncidentID, got.IncidentSeverity, s.alert.Fingerprint, s.pagerSeverity)
		}
		if body := string(pager.requests()[s.pager-1].body); !strings.Contains(body, `"incident_id":"inc1"`) {
			t.Errorf("webhook body lacks incident_id: %s", body)
		}
	}
	// After a restart the pager still knows the incident: a new alert at
	// its severity is not paged.
	a.stop()
	_, jsB := testkit.Connect(t, srv)
	b := start(t, cfg, jsB)
	if err := b.n.Notify(t.Context(), incidentAlert("fp-net", "brute_force_network", "critical", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the alert at the console", all(count("console notifications", 1, b.notifications), queued(b, 0)))
	if got := pager.count(); got != 3 {
		t.Errorf("%d requests at the pager after a new alert of the paged incident, want still 3", got)
	}
}

func TestSilenceMutesOneIncident(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	if _, err := h.n.CreateSilence(t.Context(), Silence{
		Matchers: []Matcher{{Name: "incident_id", Op: OpEqual, Value: "inc1"}},
		EndsAt:   time.Now().Add(time.Hour), CreatedBy: "alice", Comment: "pentest of one address",
	}); err != nil {
		t.Fatalf("a silence of one incident: %v", err)
	}
	other := incidentAlert("fp-other", "brute_force_user", "high", detect.TransitionFiring)
	other.IncidentID = "inc2"
	for _, a := range []detect.Alert{incidentAlert("fp-ip", "brute_force_source_ip", "high", detect.TransitionFiring), other} {
		if err := h.n.Notify(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the other incident's alert", delivered(h, 1))
	if r := records(t, h.out.String()); r[0].Alerts[0].IncidentID != "inc2" {
		t.Errorf("delivered %+v, want only the alert of the incident not silenced", r[0].Alerts[0])
	}
	if got := counterValue(t, h.reg, "vigil_alerts_silenced_total", map[string]string{}); got != 1 {
		t.Errorf("silenced = %v, want 1", got)
	}
}
