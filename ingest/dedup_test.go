package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// serviceEvent is a valid event of service svc with request id id.
func serviceEvent(svc, id string) []byte {
	ev := event.Event{Time: time.Now().Add(-time.Second).UTC(), Service: svc, RequestID: id,
		Method: "POST", Endpoint: "/v1/login", Status: 401}
	return ev.AppendJSON(nil)
}

// publishWithID publishes data on vigil.events.<svc> with Nats-Msg-Id id
// and returns JetStream's answer.
func publishWithID(t *testing.T, js jetstream.JetStream, svc, id string, data []byte) *jetstream.PubAck {
	t.Helper()
	m := nats.NewMsg(ingest.SubjectPrefix + svc)
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = data
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatalf("publish %s on %s: %v", id, svc, err)
	}
	return ack
}

// TestDeduplicationPerService publishes an event of service "evil" with
// the Nats-Msg-Id that service "victim" then uses, and the victim's retries
// of it. The victim's event must be stored and applied (one service's id
// never suppresses another's event), and its retries, before and after a
// restart of the consumer, applied and counted once.
func TestDeduplicationPerService(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)

	evil := serviceEvent("evil", "req-1")
	victim := serviceEvent("victim", "req-1")
	publishWithID(t, js, "evil", "req-1", evil)
	if ack := publishWithID(t, js, "victim", "req-1", victim); ack.Duplicate {
		t.Fatalf("JetStream dropped the victim's event as a duplicate of another service's (stream sequence %d)", ack.Sequence)
	}
	publishWithID(t, js, "victim", "req-1", victim) // a retry

	sink := &recorder{}
	c, conn, reg := newConsumer(t, s, cfg, sink)
	stop := run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	sameLines(t, "events applied", sink.Lines(), []string{string(evil), string(victim)})
	if got := metric(t, reg, "vigil_ingest_duplicate_messages_total"); got != 1 {
		t.Errorf("vigil_ingest_duplicate_messages_total = %v, want 1 (the retry)", got)
	}
	counted(t, reg, 2, "vigil_events_received_total")
	stop()
	conn.Close()

	// After a restart the consumer knows the ids of the window again, from
	// the rebuild's replay.
	publishWithID(t, js, "victim", "req-1", victim) // a late retry
	next := serviceEvent("victim", "req-2")
	publishWithID(t, js, "victim", "req-2", next)
	replay := &recorder{}
	c2, _, reg2 := newConsumer(t, s, cfg, replay)
	r, err := c2.Rebuild(context.Background(), time.Now().Add(-time.Hour), replay)
	if err != nil {
		t.Fatal(err)
	}
	sameLines(t, "events replayed", replay.Lines(), []string{string(evil), string(victim)})
	c2.SkipReplayed(r)
	run(t, c2)
	testkit.WaitFor(t, waitTime, "every message acknowledged after the restart", settled(c2))
	sameLines(t, "events after the restart", replay.Lines(), []string{string(evil), string(victim), string(next)})
	if got := metric(t, reg2, "vigil_ingest_duplicate_messages_total"); got != 1 {
		t.Errorf("after the restart vigil_ingest_duplicate_messages_total = %v, want 1 (the late retry)", got)
	}
	if got := metric(t, reg2, "vigil_events_received_total"); got != 1 {
		t.Errorf("after the restart vigil_events_received_total = %v, want 1", got)
	}
}
