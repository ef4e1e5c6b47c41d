package ingest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestCrashCountsEachEventOnce stops a consumer as a crash would: its
// events were applied but their messages never acknowledged. A new
// consumer rebuilds from the stream (the replay applies them, uncounted)
// and JetStream delivers them again. Across both consumers, which is what
// Prometheus's increase() sees across a restart, every event and every
// rejected line is counted exactly once.
func TestCrashCountsEachEventOnce(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	msgs := messages("m", 3, 1, 4, 2, 5)
	publish(t, js, msgs)
	publishData(t, js, []byte("not json"))
	events := len(lines(msgs))

	// The first consumer applies everything but settles nothing.
	sink := &recorder{}
	first, firstConn, firstReg := newConsumer(t, s, cfg, sink)
	crash := make(chan struct{})
	first.BeforeSettle(func([]uint64) { <-crash })
	stopFirst := run(t, first)
	testkit.WaitFor(t, waitTime, "the first consumer to apply every event", sink.holds(events))
	firstConn.Close() // the process dies: no acknowledgement goes out
	close(crash)
	stopFirst()

	second, _, secondReg := newConsumer(t, s, cfg, &recorder{})
	replay := &recorder{}
	r, err := second.Rebuild(context.Background(), time.Now().Add(-time.Hour), replay)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != events {
		t.Fatalf("the rebuild replayed %d events, want %d", r.Events, events)
	}
	second.SetSink(replay)
	second.SkipReplayed(r)
	run(t, second)
	testkit.WaitFor(t, waitTime, "every message delivered again and acknowledged", settled(second))

	sameLines(t, "events applied after the restart", replay.Lines(), lines(msgs))
	for _, m := range []struct {
		name   string
		labels []string
		want   int
	}{
		{"vigil_events_received_total", nil, events},
		{"vigil_http_requests_total", []string{"code", "401"}, events},
		{"vigil_events_rejected_total", []string{"reason", string(event.ReasonMalformedJSON)}, 1},
	} {
		before, after := metric(t, firstReg, m.name, m.labels...), metric(t, secondReg, m.name, m.labels...)
		if before+after != float64(m.want) {
			t.Errorf("%s%v: %v before the crash + %v after = %v, want %d", m.name, m.labels, before, after, before+after, m.want)
		}
	}
}

// A message whose settling takes longer than ack_wait (a long pause: a
// takeover's catch-up, a reload, a GC pause; on a cluster ack_wait is
// failover_after, a few seconds) is delivered again while its first
// delivery is still in the pipeline. The copy must be neither applied nor
// counted: window counts would double.
func TestRedeliveredWhileInThePipelineIsAppliedOnce(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig() // ack_wait 1s
	ensureStreams(t, js, cfg)
	sink := &recorder{}
	c, _, reg := newConsumer(t, s, cfg, sink)
	var once sync.Once
	c.BeforeSettle(func([]uint64) {
		once.Do(func() {
			testkit.WaitFor(t, 10*time.Second, "the message delivered again", func() error {
				_, ci, err := c.Info(context.Background())
				if err == nil && ci.NumRedelivered == 0 {
					err = errors.New("not redelivered yet")
				}
				return err
			})
		})
	})
	msgs := messages("slow", 3)
	publish(t, js, msgs)
	run(t, c)
	testkit.WaitFor(t, waitTime, "the message acknowledged", settled(c))
	counted(t, reg, 3, "vigil_events_received_total")
	sameLines(t, "sink", sink.Lines(), lines(msgs))
}
