package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func validEvent(i int, ts time.Time) event.Event {
	svc := []string{"auth", "billing", "catalog"}[i%3]
	return event.Event{
		Time: ts, Service: svc, RequestID: fmt.Sprintf("req-%06d", i),
		Method: "GET", Endpoint: "/v1/items/{id}", Path: fmt.Sprintf("/v1/items/%d", i),
		Status: []int{200, 200, 200, 401, 500}[i%5], LatencyMS: float64(i%50) + 0.5, HasLatency: true,
		SourceIP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), User: fmt.Sprintf("u%d", i%97),
	}
}

// invalidKinds are ten kinds of bad input: the line to publish (on service
// "billing"'s subject) and the reason Vigil must give.
func invalidKinds(now time.Time) []struct {
	reason event.Reason
	line   func(i int) string
} {
	ts := now.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	base := func(i int, extra string) string {
		return fmt.Sprintf(`{"ts":%q,"service":"billing","request_id":"bad-%d","method":"GET","endpoint":"/v1/x","status":200%s}`, ts, i, extra)
	}
	return []struct {
		reason event.Reason
		line   func(i int) string
	}{
		{event.ReasonMalformedJSON, func(i int) string { return base(i, "")[:40] }},
		{event.ReasonUnknownField, func(i int) string { return base(i, `,"admin":true`) }},
		{event.ReasonWrongType, func(i int) string { return strings.Replace(base(i, ""), `"status":200`, `"status":"200"`, 1) }},
		{event.ReasonMissingField, func(i int) string { return strings.Replace(base(i, ""), `"method":"GET",`, "", 1) }},
		{event.ReasonInvalidValue, func(i int) string { return strings.Replace(base(i, ""), `"status":200`, `"status":700`, 1) }},
		{event.ReasonFutureTimestamp, func(i int) string {
			return strings.Replace(base(i, ""), ts, now.Add(time.Hour).UTC().Format(time.RFC3339), 1)
		}},
		{event.ReasonServiceMismatch, func(i int) string { return strings.Replace(base(i, ""), `"billing"`, `"auth"`, 1) }},
		{event.ReasonInvalidUTF8, func(i int) string { return base(i, `,"user":"bob`+"\xff\xfe"+`"`) }},
		{event.ReasonTooLarge, func(i int) string { return base(i, `,"path":"/`+strings.Repeat("a", 17<<10)+`"`) }},
		{event.ReasonDuplicateField, func(i int) string { return base(i, `,"status":200`) }},
	}
}

func TestEndToEndCountsEventsDuplicatesAndRejects(t *testing.T) {
	r := startDaemon(t, testConfig(t))
	_, js := connectJS(t, r.d.NATSURL())
	ctx := context.Background()
	now := time.Now()

	const valid = 10000
	var buf []byte
	for i := range valid {
		ev := validEvent(i, now.Add(-time.Minute))
		buf = ev.AppendJSON(buf[:0])
		publishAsync(t, js, newMsg("vigil.events."+ev.Service, ev.RequestID, buf))
	}
	<-js.PublishAsyncComplete()
	for i := range 100 { // republished with the same Nats-Msg-Id: Vigil drops them
		ev := validEvent(i*37, now.Add(-time.Minute))
		publish(t, js, "vigil.events."+ev.Service, ev.RequestID, ev.AppendJSON(nil))
	}
	kinds := invalidKinds(now)
	for k, kind := range kinds {
		for i := range 10 {
			publish(t, js, "vigil.events.billing", fmt.Sprintf("bad-%d-%d", k, i), []byte(kind.line(i)))
		}
	}

	reg := r.d.Registry()
	testkit.WaitFor(t, 30*time.Second, "all events applied", func() error {
		return equalf(metric(t, reg, "vigil_events_received_total"), valid, "received")
	})
	testkit.WaitFor(t, 10*time.Second, "all rejects counted", func() error {
		for _, kind := range kinds {
			if err := equalf(metric(t, reg, "vigil_events_rejected_total", "reason", string(kind.reason)), 10, string(kind.reason)); err != nil {
				return err
			}
		}
		return nil
	})
	testkit.WaitFor(t, 10*time.Second, "dead letters stored", func() error {
		s, err := js.Stream(ctx, ingest.DeadLetterStream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		return equalf(float64(info.State.Msgs), 100, "dead-letter messages")
	})
	testkit.WaitFor(t, 10*time.Second, "the republished events dropped", func() error {
		return equalf(metric(t, reg, "vigil_ingest_duplicate_messages_total"), 100, "duplicates")
	})
	if got := metric(t, reg, "vigil_events_received_total"); got != valid {
		t.Errorf("received = %v after rejects settled, want exactly %d", got, valid)
	}
	checkDeadLetterHeaders(t, js)
}

// checkDeadLetterHeaders reads one dead letter of each reason and checks
// that it carries the reason and the original subject.
func checkDeadLetterHeaders(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, ingest.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seq := uint64(1); seq <= 100; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get dead letter %d: %v", seq, err)
		}
		code := m.Header.Get(ingest.HeaderRejectCode)
		if m.Header.Get(ingest.HeaderRejectReason) == "" || m.Header.Get(ingest.HeaderSubject) != "vigil.events.billing" {
			t.Fatalf("dead letter %d headers = %v, want reason and subject", seq, m.Header)
		}
		seen[code] = true
	}
	if len(seen) != 10 {
		t.Errorf("dead letters carry %d distinct reasons, want 10: %v", len(seen), seen)
	}
}

func TestRestartResumesWithoutLosingEvents(t *testing.T) {
	cfg := testConfig(t)
	cfg.NATS.Listen = "127.0.0.1:" + freePort(t)
	cfg.Ingest.FetchBatch = 50
	first := startDaemon(t, cfg)
	_, js := connectJS(t, first.d.NATSURL())
	const total = 6000
	now := time.Now()
	var buf []byte
	for i := range total {
		ev := validEvent(i, now.Add(-time.Minute))
		buf = ev.AppendJSON(buf[:0])
		publishAsync(t, js, newMsg("vigil.events."+ev.Service, ev.RequestID, buf))
	}
	<-js.PublishAsyncComplete()
	testkit.WaitFor(t, 20*time.Second, "about half applied", func() error {
		if got := metric(t, first.d.Registry(), "vigil_events_received_total"); got < total/2 {
			return fmt.Errorf("received %v", got)
		}
		return nil
	})
	first.stop()
	before := metric(t, first.d.Registry(), "vigil_events_received_total")
	t.Logf("applied %v of %d events before the restart", before, total)

	second := startDaemon(t, cfg)
	testkit.WaitFor(t, 30*time.Second, "the rest applied after restart", func() error {
		after := metric(t, second.d.Registry(), "vigil_events_received_total")
		return equalf(before+after, total, "events applied across both runs")
	})
}
