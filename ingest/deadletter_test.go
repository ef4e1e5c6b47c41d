package ingest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestRunDeadLettersRejectedLines(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)

	valid := messages("ok", 4)[0]
	line := func(i int) string { return string(valid[i].AppendJSON(nil)) }
	ts := valid[0].Time.Format(time.RFC3339Nano)
	badStatus := `{"ts":"` + ts + `","service":"api","request_id":"r1","method":"GET","endpoint":"/v1/x","status":999}`
	otherService := `{"ts":"` + ts + `","service":"billing","request_id":"r2","method":"GET","endpoint":"/v1/x","status":200}`
	incomplete := `{"ts":"` + ts + `","service":"api"}`
	// Cut at 1 KiB, but not inside the two-byte "é" that straddles it.
	hugeStart := `{"ts":"` + ts + `","service":"api","user_agent":"`
	huge := hugeStart + strings.Repeat("a", ingest.DeadLetterMaxBytes-1-len(hugeStart)) + "é" + strings.Repeat("a", 20000) + `"}`
	// Over 1 KiB, but rejected for another reason: kept whole.
	longBad := `{"ts":"` + ts + `","service":"api","request_id":"r3","method":"GET","endpoint":"/v1/x","status":999,"path":"/` + strings.Repeat("p", 1500) + `"}`
	mixed := strings.Join([]string{
		line(0), "not json", line(1), badStatus, otherService, "", incomplete, line(2), huge, longBad,
	}, "\n")
	publishData(t, js, []byte(mixed))
	publishData(t, js, []byte("[]")) // nothing valid: the next message must still come through
	publishData(t, js, []byte(line(3)))

	sink := &recorder{}
	c, _, reg := newConsumer(t, s, cfg, sink)
	run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))

	sameLines(t, "sink", sink.Lines(), []string{line(0), line(1), line(2), line(3)})
	wantDead := []struct {
		line int
		code event.Reason
		data string
		seq  string // in the events stream
		size string // of a line cut short
	}{
		{2, event.ReasonMalformedJSON, "not json", "1", ""},
		{4, event.ReasonInvalidValue, badStatus, "1", ""},
		{5, event.ReasonServiceMismatch, otherService, "1", ""},
		{7, event.ReasonMissingField, incomplete, "1", ""},
		{9, event.ReasonTooLarge, huge[:ingest.DeadLetterMaxBytes-1], "1", strconv.Itoa(len(huge))},
		{10, event.ReasonInvalidValue, longBad, "1", ""},
		{1, event.ReasonMalformedJSON, "[]", "2", ""},
	}
	dead := deadLetters(t, js)
	if len(dead) != len(wantDead) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(wantDead))
	}
	wantRejected := map[event.Reason]float64{}
	for i, w := range wantDead {
		wantRejected[w.code]++
		m := dead[i]
		if got := m.Header.Get(ingest.HeaderRejectCode); got != string(w.code) {
			t.Errorf("dead letter %d: %s = %q, want %q", i, ingest.HeaderRejectCode, got, w.code)
		}
		reason := m.Header.Get(ingest.HeaderRejectReason)
		if want := fmt.Sprintf("line %d: ", w.line); !strings.HasPrefix(reason, want) || !strings.Contains(reason, string(w.code)) {
			t.Errorf("dead letter %d: %s = %q, want it to start with %q and name %s", i, ingest.HeaderRejectReason, reason, want, w.code)
		}
		if got := m.Header.Get(ingest.HeaderSubject); got != subject {
			t.Errorf("dead letter %d: %s = %q, want %q", i, ingest.HeaderSubject, got, subject)
		}
		if string(m.Data) != w.data {
			t.Errorf("dead letter %d holds %q, want %q", i, m.Data, w.data)
		}
		if got := m.Header.Get(ingest.HeaderSequence); got != w.seq {
			t.Errorf("dead letter %d: %s = %q, want %q", i, ingest.HeaderSequence, got, w.seq)
		}
		if got := m.Header.Get(ingest.HeaderRejectSize); got != w.size {
			t.Errorf("dead letter %d: %s = %q, want %q", i, ingest.HeaderRejectSize, got, w.size)
		}
	}
	for _, r := range event.Reasons() {
		if got := metric(t, reg, "vigil_events_rejected_total", "reason", string(r)); got != wantRejected[r] {
			t.Errorf("vigil_events_rejected_total{reason=%q} = %v, want %v", r, got, wantRejected[r])
		}
	}
	if got := metric(t, reg, "vigil_events_deadlettered_total"); got != float64(len(wantDead)) {
		t.Errorf("vigil_events_deadlettered_total = %v, want %d", got, len(wantDead))
	}
	if got := metric(t, reg, "vigil_events_received_total"); got != 4 {
		t.Errorf("vigil_events_received_total = %v, want 4", got)
	}
}

// deadLetters returns the messages of the dead-letter stream, in order.
func deadLetters(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, ingest.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// TestDeadLetterFailureAppliesOnce makes storing dead letters fail (their
// stream is gone) for a message that mixes valid and rejected lines, while
// the message behind it is applied but not yet settled. Both must be handed
// back rather than acknowledged, and once the consumer has bound again
// (which creates the stream anew) their valid events must be neither
// applied nor counted a second time, nor the messages behind them be lost
// or reordered.
func TestDeadLetterFailureAppliesOnce(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	cfg.FetchBatch = 1 // a chunk per message
	ensureStreams(t, js, cfg)
	msgs := messages("m", 2, 3, 1, 2)
	second := string(msgs[1][0].AppendJSON(nil))
	secondApplied := make(chan struct{})
	var once sync.Once
	sink := &recorder{hook: func(ev *event.Event) {
		if string(ev.AppendJSON(nil)) == second {
			once.Do(func() { close(secondApplied) })
		}
	}}
	c, _, reg := newConsumer(t, s, cfg, sink)
	// The first message (sequence 1) is settled only once the second is
	// being applied, so that the second is applied before the failure.
	c.BeforeSettle(func(seqs []uint64) {
		if len(seqs) == 1 && seqs[0] == 1 {
			select {
			case <-secondApplied:
			case <-time.After(5 * time.Second):
				t.Error("the second message was not applied while the first waited to be settled")
			}
		}
	})
	run(t, c)
	testkit.WaitFor(t, waitTime, "the consumer bound", settled(c))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, ingest.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		data := m.data()
		if i%2 == 0 {
			data = append(data, "\nnot json"...)
		}
		publishData(t, js, data)
	}
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	sameLines(t, "sink", sink.Lines(), lines(msgs))
	if dead := deadLetters(t, js); len(dead) != 2 {
		t.Errorf("%d dead letters, want 2", len(dead))
	}
	counted(t, reg, float64(len(lines(msgs))), "vigil_events_received_total")
	counted(t, reg, 2, "vigil_events_rejected_total", "reason", "malformed_json")
	if got := metric(t, reg, "vigil_events_deadlettered_total"); got != 2 {
		t.Errorf("vigil_events_deadlettered_total = %v, want 2", got)
	}
}

// TestGarbageMessageIsBounded publishes one 1 MB message of 520,000 bad
// lines around two valid events. It must cost at most MaxDeadLetters dead
// letters and one record saying how many more there were and where the
// whole message is, and be settled well within ack_wait (so it is not
// delivered and counted again); its valid events are applied and every
// rejected line is counted.
func TestGarbageMessageIsBounded(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	cfg.AckWait = 30 * time.Second
	ensureStreams(t, js, cfg)
	valid := messages("ok", 2)[0]
	const bad = 520_000
	var b strings.Builder
	b.WriteString(string(valid[0].AppendJSON(nil)))
	b.WriteString(strings.Repeat("\nx", bad))
	b.WriteString("\n" + string(valid[1].AppendJSON(nil)))
	publishData(t, js, []byte(b.String()))

	sink := &recorder{}
	c, _, reg := newConsumer(t, s, cfg, sink)
	start := time.Now()
	run(t, c)
	testkit.WaitFor(t, cfg.AckWait, "the message acknowledged", settled(c))
	if d := time.Since(start); d > cfg.AckWait/3 {
		t.Errorf("the message took %s to settle; it must stay far under ack_wait (%s)", d, cfg.AckWait)
	}
	sameLines(t, "sink", sink.Lines(), lines([]message{valid}))
	counted(t, reg, bad, "vigil_events_rejected_total", "reason", string(event.ReasonMalformedJSON))
	dead := deadLetters(t, js)
	if len(dead) != ingest.MaxDeadLetters+1 {
		t.Fatalf("%d dead letters, want %d and one record of the rest", len(dead), ingest.MaxDeadLetters)
	}
	if got := metric(t, reg, "vigil_events_deadlettered_total"); got != ingest.MaxDeadLetters {
		t.Errorf("vigil_events_deadlettered_total = %v, want %d", got, ingest.MaxDeadLetters)
	}
	last := dead[len(dead)-1]
	for h, want := range map[string]string{
		ingest.HeaderRejectCode:    ingest.RejectCodeOmitted,
		ingest.HeaderRejectedLines: strconv.Itoa(bad),
		ingest.HeaderSubject:       subject,
		ingest.HeaderSequence:      "1",
		ingest.HeaderOmittedLines:  strconv.Itoa(bad - ingest.MaxDeadLetters),
	} {
		if got := last.Header.Get(h); got != want {
			t.Errorf("the record of the rest: %s = %q, want %q", h, got, want)
		}
	}
	if reason := last.Header.Get(ingest.HeaderRejectReason); !strings.Contains(reason, "message 1 of "+ingest.EventsStream+" (vigil deadletters show --original") {
		t.Errorf("the record of the rest does not say where the message is: %q", reason)
	}
}
