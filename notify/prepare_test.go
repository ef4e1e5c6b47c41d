package notify

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// jsState describes the settings a new config changes in JetStream: the
// outbox's max age, each consumer's ack wait and deliver policy.
func jsState(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	st, err := js.Stream(t.Context(), OutboxStream)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("outbox max age %s;", st.CachedInfo().Config.MaxAge)
	var names []string
	for name := range st.ConsumerNames(t.Context()).Name() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		c, err := st.Consumer(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf(" %s ack wait %s;", name, c.CachedInfo().Config.AckWait)
	}
	return out
}

// TestPrepareChangesNothingUntilCommitAndActivate: preparing a Notifier
// for a new config (as a reload does before it knows whether the rest of
// the config is good) leaves the streams, consumers and gauges alone;
// Commit changes JetStream only, and Activate the gauges. Preparing for
// the config in force plans no change at all.
func TestPrepareChangesNothingUntilCommitAndActivate(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	gone := newEndpoint(t, func(int, http.ResponseWriter) int { return http.StatusGone })
	cfg := Config{Receivers: []ReceiverConfig{webhookConfig("siem", gone.URL, "")}, Routes: oneRoute("siem"), Notify: testSettings()}
	h := start(t, cfg, js)
	if err := h.n.Notify(t.Context(), testAlert("first", detect.TransitionFiring)); err != nil {
		t.Fatal(err)
	}
	disabled := map[string]string{"receiver": "siem"}
	testkit.WaitFor(t, 5*time.Second, "the receiver disabled", metricIs(h.reg, "vigil_notify_receiver_disabled", disabled, 1))
	opts := Options{Registerer: h.reg, LogWriter: io.Discard}

	same, err := Prepare(t.Context(), cfg, js, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(same.plan.changes); n != 0 {
		t.Errorf("Prepare for the config in force plans %d JetStream changes, want none", n)
	}

	next := cfg
	next.Notify.QueueMaxAge += time.Hour
	next.Notify.AckWait += time.Second
	next.Receivers = append(slices.Clone(cfg.Receivers), logConfig("console"))
	before := jsState(t, js)
	p, err := Prepare(t.Context(), next, js, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsState(t, js); got != before {
		t.Errorf("Prepare changed JetStream:\nbefore %s\nafter  %s", before, got)
	}
	if got := counterValue(t, h.reg, "vigil_notify_receiver_disabled", disabled); got != 1 {
		t.Errorf("vigil_notify_receiver_disabled = %v after Prepare, want 1 until the new Notifier is activated", got)
	}

	n, err := p.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("outbox max age %s; vigil-notify-console ack wait %[2]s; vigil-notify-siem ack wait %[2]s;", next.Notify.QueueMaxAge, next.Notify.AckWait)
	if got := jsState(t, js); got != want {
		t.Errorf("after Commit: %s\nwant %s", got, want)
	}
	if got := counterValue(t, h.reg, "vigil_notify_receiver_disabled", disabled); got != 1 {
		t.Errorf("vigil_notify_receiver_disabled = %v after Commit, want 1 until the new Notifier is activated", got)
	}
	h.stop()
	n.Activate()
	if got := counterValue(t, h.reg, "vigil_notify_receiver_disabled", disabled); got != 0 || len(n.DisabledReceivers()) != 0 {
		t.Errorf("after Activate: disabled = %v, DisabledReceivers = %v, want none", got, n.DisabledReceivers())
	}
}

// TestCommitUndoesItsChangesWhenOneFails: a consumer made by hand on the
// subject of a new receiver keeps Commit from creating that receiver's (a
// work-queue stream gives each subject to one consumer), after it updated
// the outbox and a consumer and created another. Those are undone:
// JetStream is as before, and the error names what failed.
func TestCommitUndoesItsChangesWhenOneFails(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{logConfig("console")}, Routes: oneRoute("console"), Notify: testSettings()}
	start(t, cfg, js).stop()
	_, err := js.CreateOrUpdateConsumer(t.Context(), OutboxStream, jetstream.ConsumerConfig{
		Durable: "by-hand", FilterSubject: deliverPrefix + "odd", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	before := jsState(t, js)

	next := cfg
	next.Notify.QueueMaxAge += time.Hour
	next.Notify.AckWait += time.Second
	next.Receivers = []ReceiverConfig{logConfig("console"), logConfig("added"), logConfig("odd")}
	next.Routes = oneRoute("console", "added", "odd")
	p, err := Prepare(t.Context(), next, js, Options{LogWriter: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.plan.changes); n != 4 {
		t.Fatalf("Prepare planned %d changes, want 4 (outbox, console, added, odd)", n)
	}
	_, err = p.Commit(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "create consumer for receiver odd:") {
		t.Fatalf("Commit = %v, want the creation of odd's consumer refused", err)
	}
	if got := jsState(t, js); got != before {
		t.Errorf("a failed Commit left JetStream changed:\nbefore %s\nafter  %s", before, got)
	}
}

// TestAckWaitAtMostCapsTheDeliveryConsumers: on a cluster the daemon
// passes failover_after, and the receivers' consumers wait no longer than
// that before handing out what a crashed member had taken; a shorter
// ack_wait stays as configured.
func TestAckWaitAtMostCapsTheDeliveryConsumers(t *testing.T) {
	srv := testkit.RunNATS(t)
	_, js := testkit.Connect(t, srv)
	cfg := Config{Receivers: []ReceiverConfig{webhookConfig("siem", "http://127.0.0.1:9/", "")}, Routes: oneRoute("siem"), Notify: testSettings()}
	cfg.Notify.AckWait = 30 * time.Second
	for _, tc := range []struct {
		name         string
		atMost, want time.Duration
	}{
		{"failover_after below ack_wait caps it", 10 * time.Second, 10 * time.Second},
		{"failover_after above ack_wait leaves it", time.Minute, 30 * time.Second},
		{"a single instance leaves it", 0, 30 * time.Second},
	} {
		start(t, cfg, js, func(o *Options) { o.AckWaitAtMost = tc.atMost }).stop()
		want := fmt.Sprintf("outbox max age %s; vigil-notify-siem ack wait %s;", cfg.Notify.QueueMaxAge, tc.want)
		if got := jsState(t, js); got != want {
			t.Errorf("%s: %s, want %s", tc.name, got, want)
		}
	}
}
