package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify/jsonlog"
)

// records decodes the log receiver's output.
func records(t *testing.T, out string) []jsonlog.Record {
	t.Helper()
	var rs []jsonlog.Record
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r jsonlog.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log receiver line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestNotifyAppliesAlertState(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	steps := []struct {
		alert detect.Alert
	}{
		{testAlert("never-fired", detect.TransitionResolved)}, // nothing to resolve
		{testAlert("fp", detect.TransitionFiring)},
		{testAlert("fp", detect.TransitionFiring)}, // already announced
		{testAlert("fp", detect.TransitionRepeat)},
		{testAlert("fp", detect.TransitionRepeat)},
		{testAlert("fp", detect.TransitionResolved)},
		{testAlert("fp", detect.TransitionResolved)}, // already resolved
		{testAlert("fp", detect.TransitionFiring)},   // a new episode
	}
	for _, s := range steps {
		if err := h.n.Notify(t.Context(), s.alert); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"firing", "repeat", "repeat", "resolved", "firing"}
	testkit.WaitFor(t, 5*time.Second, "five notifications and an empty outbox", delivered(h, len(want)))
	rs := records(t, h.out.String())
	ids := map[string]bool{}
	for i, r := range rs {
		if string(r.Kind) != want[i] {
			t.Errorf("notification %d is %s, want %s", i, r.Kind, want[i])
		}
		ids[r.ID] = true
	}
	if len(ids) != len(want) {
		t.Errorf("%d distinct delivery ids for %d notifications", len(ids), len(want))
	}
	for _, c := range []struct {
		transition, outcome string
		want                float64
	}{
		{"firing", "notified", 2}, {"firing", "duplicate", 1},
		{"repeat", "notified", 2}, {"resolved", "notified", 1}, {"resolved", "duplicate", 2},
	} {
		got := counterValue(t, h.reg, "vigil_alert_transitions_total", map[string]string{"transition": c.transition, "outcome": c.outcome})
		if got != c.want {
			t.Errorf("transitions{%s,%s} = %v, want %v", c.transition, c.outcome, got, c.want)
		}
	}
}

func TestSilences(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	ctx := t.Context()

	if _, err := h.n.CreateSilence(ctx, Silence{Matchers: []Matcher{{Name: "user", Op: OpRegex, Value: ".*"}}, EndsAt: time.Now().Add(time.Hour), CreatedBy: "a", Comment: "b"}); !errors.As(err, new(*ValidationError)) {
		t.Errorf("silence matching everything: err = %v, want a ValidationError", err)
	}
	sil, err := h.n.CreateSilence(ctx, Silence{
		Matchers:  []Matcher{{Name: "rule", Op: OpEqual, Value: "brute_force_user"}, {Name: "user", Op: OpEqual, Value: "admin"}},
		EndsAt:    time.Now().Add(time.Hour),
		CreatedBy: "alice", Comment: "pentest, TICKET-42",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sil.ID == "" || sil.Status != SilenceActive {
		t.Fatalf("created silence = %+v, want an id and active", sil)
	}
	if err := h.n.Notify(ctx, testAlert("muted", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	other := testAlert("heard", detect.TransitionFiring)
	other.Labels = map[string]string{"user": "bob"}
	if err := h.n.Notify(ctx, other); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the unsilenced alert", count("notifications", 1, h.notifications))
	if got := counterValue(t, h.reg, "vigil_alerts_silenced_total", map[string]string{}); got != 1 {
		t.Errorf("silenced = %v, want 1", got)
	}
	// A silenced episode is recorded: it is firing, and its resolve is not
	// sent to receivers that never heard of it.
	if fa, _ := h.n.FiringAlerts(ctx); len(fa) != 2 {
		t.Errorf("FiringAlerts = %d alerts, want both the silenced and the delivered one", len(fa))
	}
	list, err := h.n.ListSilences(ctx)
	if err != nil || len(list) != 1 || list[0].ID != sil.ID {
		t.Fatalf("ListSilences = %+v, %v", list, err)
	}
	if err := h.n.ExpireSilence(ctx, sil.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.n.ExpireSilence(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrSilenceNotFound) {
		t.Errorf("expire unknown: err = %v, want ErrSilenceNotFound", err)
	}
	if err := h.n.ExpireSilence(ctx, "alert.>"); !errors.Is(err, ErrSilenceNotFound) {
		t.Errorf("expire malformed id: err = %v, want ErrSilenceNotFound", err)
	}
	if list, _ := h.n.ListSilences(ctx); len(list) != 1 || list[0].Status != SilenceExpired {
		t.Errorf("after expiry: %+v, want one expired silence", list)
	}
	// The silence is over: the next repeat announces the alert as firing.
	if err := h.n.Notify(ctx, testAlert("muted", detect.TransitionRepeat)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the alert after the silence", count("notifications", 2, h.notifications))
	if r := records(t, h.out.String())[1]; r.Kind != "firing" || r.Alerts[0].Fingerprint != "muted" {
		t.Errorf("after the silence: %+v, want a firing announcement", r)
	}
}

func TestFloodRollsIntoDigest(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	s := testSettings()
	s.FloodLimit, s.FloodWindow = 3, 500*time.Millisecond
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: s}
	h := start(t, cfg, js)
	for i := range 10 {
		a := testAlert(fmt.Sprintf("fp%d", i), detect.TransitionFiring)
		if i%2 == 1 {
			a.Rule = "error_spike"
		}
		if err := h.n.Notify(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "three alerts and a digest", count("notifications", 4, h.notifications))
	rs := records(t, h.out.String())
	for i := range 3 {
		if rs[i].Kind != "firing" || len(rs[i].Alerts) != 1 {
			t.Errorf("notification %d = %s with %d alerts, want a single firing", i, rs[i].Kind, len(rs[i].Alerts))
		}
	}
	d := rs[3]
	if d.Kind != "digest" || len(d.Alerts) != 7 {
		t.Fatalf("fourth notification = %s with %d alerts, want a digest of 7", d.Kind, len(d.Alerts))
	}
	if want := "7 more alerts: 4 × error_spike, 3 × brute_force_user"; d.Summary != want {
		t.Errorf("digest summary %q, want %q", d.Summary, want)
	}
	testkit.WaitFor(t, 2*time.Second, "digested = 7", metricIs(h.reg, "vigil_notifications_total", map[string]string{"receiver": "console", "outcome": "digested"}, 7))
}

func TestFloodDigestsAreCappedAndPaced(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	s := testSettings()
	s.FloodLimit, s.FloodWindow, s.DigestMax = 2, 400*time.Millisecond, 3
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: s}
	h := start(t, cfg, js)
	for i := range 10 {
		if err := h.n.Notify(t.Context(), testAlert(fmt.Sprintf("fp%d", i), detect.TransitionFiring)); err != nil {
			t.Fatal(err)
		}
	}
	want := []int{1, 1, 3, 3, 2} // two alone, then full digests one window apart
	testkit.WaitFor(t, 5*time.Second, "all ten alerts", count("notifications", len(want), h.notifications))
	rs := records(t, h.out.String())
	for i, r := range rs {
		if len(r.Alerts) != want[i] {
			t.Errorf("notification %d has %d alerts, want %d", i, len(r.Alerts), want[i])
		}
	}
	for i := 3; i < len(rs); i++ {
		if gap := rs[i].Time.Sub(rs[i-1].Time); gap < s.FloodWindow-50*time.Millisecond {
			t.Errorf("digest %d came %s after the previous one, want about a flood window", i, gap)
		}
	}
}

func TestReconcileAfterRestart(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	for _, fp := range []string{"gone", "still"} {
		if err := h.n.Notify(t.Context(), testAlert(fp, detect.TransitionFiring)); err != nil {
			t.Fatal(err)
		}
	}
	watermark := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	// After a restart the engine, rebuilt from the stream, fires "still" and "new".
	err := h.n.Reconcile(t.Context(), []detect.Alert{testAlert("still", detect.TransitionFiring), testAlert("new", detect.TransitionFiring)}, watermark)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "four notifications", count("notifications", 4, h.notifications))
	got := map[string]string{}
	for _, r := range records(t, h.out.String())[2:] {
		got[r.Alerts[0].Fingerprint] = string(r.Kind)
		if r.Kind == "resolved" && !r.Alerts[0].EndsAt.Equal(watermark) {
			t.Errorf("resolved at %s, want the watermark %s", r.Alerts[0].EndsAt, watermark)
		}
	}
	if got["gone"] != "resolved" || got["new"] != "firing" || len(got) != 2 {
		t.Errorf("after reconcile: %v, want gone resolved and new firing only", got)
	}
	firing, _ := h.n.FiringAlerts(t.Context())
	if len(firing) != 2 {
		t.Errorf("%d alerts firing, want still and new", len(firing))
	}
}

// TestCatchUpLeavesAnAlertResolvedMeanwhile: a notifier's start reads the
// alerts firing to tell new receivers of them; one resolved before it gets
// to announce it must stay resolved, not fire again as a new episode (seen
// as a second page of an alert after its resolve).
func TestCatchUpLeavesAnAlertResolvedMeanwhile(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	if err := h.n.Notify(t.Context(), testAlert("a", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	read, err := h.n.FiringAlerts(t.Context())
	if err != nil || len(read) != 1 {
		t.Fatalf("firing alerts = %v, %v", read, err)
	}
	if err := h.n.Notify(t.Context(), testAlert("a", detect.TransitionResolved)); err != nil {
		t.Fatal(err)
	}
	if err := h.n.announce(t.Context(), read, modeCatchUp); err != nil {
		t.Fatal(err)
	}
	rec, _, err := h.n.state.alert(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Firing || rec.Episode != 1 {
		t.Fatalf("after the catch-up: firing %v, episode %d; want the alert left resolved in episode 1", rec.Firing, rec.Episode)
	}
}

func TestAnnouncingAlertsAlreadyAnnouncedIsNotAFault(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	h := start(t, cfg, js)
	firing := []detect.Alert{testAlert("a", detect.TransitionFiring), testAlert("b", detect.TransitionFiring)}
	if err := h.n.Announce(t.Context(), firing); err != nil {
		t.Fatal(err)
	}
	// Every start and every rules reload announces what the rebuilt engine
	// fires again.
	for range 3 {
		if err := h.n.Announce(t.Context(), firing); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "two notifications and an empty outbox", delivered(h, 2))
	for outcome, want := range map[string]float64{outcomeNotified: 2, outcomeDuplicate: 0} {
		if got := counterValue(t, h.reg, "vigil_alert_transitions_total", map[string]string{"transition": "firing", "outcome": outcome}); got != want {
			t.Errorf("transitions{firing,%s} = %v, want %v", outcome, got, want)
		}
	}
}
