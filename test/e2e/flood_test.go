package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestMalformedFlood mixes malformed messages one for one with valid
// single-event messages (10,000 of each; 100,000 with VIGIL_E2E_LONG=1).
// Every valid event must be applied and every bad one dead-lettered with
// its reason, both when the daemon drains them as a backlog and when they
// arrive live.
//
// Two throughput figures compare the valid events with the same events
// alone. Live, at an offered rate the daemon can serve (5,000 valid and
// 5,000 malformed messages per second; VIGIL_E2E_FLOOD_RATE sets the valid
// rate), the valid events must be applied
// as fast as without the flood: the long version asserts within 20%. The
// backlog drain shows capacity: a malformed message costs JetStream at
// least what a valid one does (delivery, ack) plus storing its dead letter,
// so a one-for-one flood cuts the valid events' drain rate to about a
// quarter; that figure is reported, not asserted.
func TestMalformedFlood(t *testing.T) {
	t.Parallel()
	n := pick(10_000, 100_000)
	clean := drainMix(t, n, 0)
	flood := drainMix(t, n, n)
	t.Logf("backlog: valid events/s clean %.0f, in the flood %.0f (%.0f%%); flood drain %s for %d messages",
		float64(n)/clean.Seconds(), float64(n)/flood.Seconds(), 100*clean.Seconds()/flood.Seconds(),
		flood.Round(time.Millisecond), 2*n)

	rate := envInt("VIGIL_E2E_FLOOD_RATE", 5000)
	liveClean := liveMix(t, n, 0, rate)
	liveFlood := liveMix(t, n, n, rate)
	ratio := liveClean.Seconds() / liveFlood.Seconds()
	t.Logf("live at %d valid messages/s: valid events/s clean %.0f, in the flood %.0f (%.0f%%)",
		rate, float64(n)/liveClean.Seconds(), float64(n)/liveFlood.Seconds(), 100*ratio)
	if longRun() && ratio < 0.8 {
		t.Errorf("live valid throughput in the flood is %.0f%% of the clean run's, want at least 80%%", 100*ratio)
	}
}

// BenchmarkMalformedFlood compares the backlog drain of the flood with the
// transport's ceiling in the same run. For each of a clean stream (valid
// single-event messages) and the flood (a malformed message after each
// valid one) it drains a fresh stream twice: with the daemon, and with a
// consumer in the test process that does only what the flood asks of the
// transport: it acknowledges each valid message, and stores each malformed
// one (its first 1 KiB, as Vigil does, but without Vigil's headers) in the
// dead-letter stream before acknowledging it. It reports valid events/s
// for each and the ratios.
//
//	VIGIL_E2E_BENCH_EVENTS=100000 go test -run '^$' -bench MalformedFlood -benchtime 1x -count 3 ./test/e2e/
func BenchmarkMalformedFlood(b *testing.B) {
	n := benchEvents()
	for range b.N {
		ceilClean, ceilFlood := ceilingMix(b, n, 0), ceilingMix(b, n, n)
		clean, flood := drainMix(b, n, 0), drainMix(b, n, n)
		b.ReportMetric(float64(n)/ceilClean.Seconds(), "ceiling-clean-valid-events/s")
		b.ReportMetric(float64(n)/ceilFlood.Seconds(), "ceiling-flood-valid-events/s")
		b.ReportMetric(100*ceilClean.Seconds()/ceilFlood.Seconds(), "ceiling-flood-%-of-clean")
		b.ReportMetric(float64(n)/clean.Seconds(), "vigil-clean-valid-events/s")
		b.ReportMetric(float64(n)/flood.Seconds(), "vigil-flood-valid-events/s")
		b.ReportMetric(100*clean.Seconds()/flood.Seconds(), "vigil-flood-%-of-clean")
		b.ReportMetric(100*ceilFlood.Seconds()/flood.Seconds(), "vigil-flood-%-of-ceiling")
	}
}

// ceilingMix fills a fresh stream as drainMix does and drains it with the
// ceiling consumer of BenchmarkMalformedFlood, returning the drain time.
func ceilingMix(b *testing.B, valid, bad int) time.Duration {
	b.Helper()
	ns := startNATSServer(b)
	defer ns.stop()
	c := connect(b, ns.url())
	c.ensureStreams(b)
	c.prefill(b, valid+bad, mixMsgs(1, bad))

	// A second goroutine acknowledges in delivery order, each malformed
	// message once its dead letter is stored, as Vigil's settling stage does.
	type delivery struct {
		m    jetstream.Msg
		dead jetstream.PubAckFuture
	}
	settle := make(chan delivery, 4*ingest.DefaultConfig().FetchBatch)
	var failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range settle {
			if d.dead != nil {
				select {
				case <-d.dead.Ok():
				case <-d.dead.Err():
					failed.Add(1) // acknowledged all the same, so that the drain ends
				}
			}
			_ = d.m.Ack()
		}
	})
	cons := ceilingConsumer(b, c, "ceiling-flood", jetstream.AckExplicitPolicy, jetstream.DeliverAllPolicy)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		d := delivery{m: m}
		if md, err := m.Metadata(); err == nil && md.Sequence.Stream <= uint64(2*bad) && md.Sequence.Stream%2 == 0 {
			dl := nats.NewMsg(ingest.DeadLetterSubject)
			dl.Data = m.Data()[:min(len(m.Data()), ingest.DeadLetterMaxBytes)]
			if d.dead, err = c.js.PublishMsgAsync(dl, jetstream.WithStallWait(10*time.Second)); err != nil {
				failed.Add(1)
				d.dead = nil
			}
		}
		settle <- d
	}, jetstream.PullMaxMessages(ingest.DefaultConfig().FetchBatch))
	if err != nil {
		b.Fatal(err)
	}
	d := c.drained(b, "ceiling-flood", 5*time.Minute)
	cc.Stop()
	<-cc.Closed() // no handler sends after this
	close(settle)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d dead letters not stored", f)
	}
	if got := c.streamMsgs(b, ingest.DeadLetterStream); got != uint64(bad) {
		b.Fatalf("the dead-letter stream holds %d messages, want %d", got, bad)
	}
	return d
}

// liveMix runs a fresh daemon, publishes valid single-event messages at
// rate per second with as many malformed ones interleaved as bad asks
// for, and returns the time from the first publish until every valid
// event was applied and every bad one dead-lettered.
func liveMix(t *testing.T, valid, bad, rate int) time.Duration {
	v := newVigil(t, vigilConfig{Lateness: drainLateness})
	c := connect(t, v.natsURL())
	good := normalMsgs(1)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var futures []jetstream.PubAckFuture
	for sent := 0; sent < valid; {
		now := <-tick.C
		due := min(valid, int(now.Sub(start).Seconds()*float64(rate)))
		for ; sent < due; sent++ {
			futures = append(futures, c.publishAsync(t, good(sent)))
			if sent < bad {
				futures = append(futures, c.publishAsync(t, malformed(sent)))
			}
		}
	}
	c.waitAcks(t, futures)
	testkit.WaitFor(t, time.Minute, "every event applied or dead-lettered", func() error {
		m, err := v.metrics()
		if err != nil {
			return err
		}
		if r, d := m["vigil_events_received_total"], m["vigil_events_deadlettered_total"]; r != float64(valid) || d != float64(bad) {
			return fmt.Errorf("applied %v of %d, dead-lettered %v of %d", r, valid, d, bad)
		}
		return nil
	})
	d := time.Since(start)
	v.stop()
	return d
}

// publishAsync publishes m without waiting for JetStream's ack. When too
// many acks are outstanding (the server is the bottleneck), it waits for
// them and tries again, so the publisher slows down instead of failing.
func (c *client) publishAsync(t testing.TB, m *nats.Msg) jetstream.PubAckFuture {
	t.Helper()
	for {
		f, err := c.js.PublishMsgAsync(m)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			select {
			case <-c.js.PublishAsyncComplete():
			case <-time.After(10 * time.Second):
				t.Fatal("JetStream confirmed none of the outstanding publishes in 10s")
			}
			continue
		}
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		return f
	}
}

// mixMsgs returns the message builder of a flood: valid messages of perMsg
// events with a malformed one after each while bad lasts (bad must not
// exceed the valid messages). The stream therefore holds a malformed
// message at every even sequence up to 2*bad.
func mixMsgs(perMsg, bad int) func(i int) *nats.Msg {
	good := normalMsgs(perMsg)
	return func(i int) *nats.Msg {
		if i < 2*bad && i%2 == 1 {
			return malformed(i / 2)
		}
		return good(i)
	}
}

// drainMix fills a fresh stream with valid single-event messages and bad
// ones interleaved, lets a fresh daemon drain it, checks every count, and
// returns the drain time.
func drainMix(t testing.TB, valid, bad int) time.Duration {
	t.Helper()
	ns := startNATSServer(t)
	c := connect(t, ns.url())
	c.ensureStreams(t)
	c.prefill(t, valid+bad, mixMsgs(1, bad))
	v := newVigil(t, vigilConfig{NATSURL: ns.url(), Lateness: drainLateness})
	d := c.drained(t, ingest.DefaultConfig().Consumer, 2*time.Minute)

	m, err := v.metrics()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"vigil_events_received_total", m["vigil_events_received_total"], float64(valid)},
		{"vigil_events_rejected_total", sumMetric(m, "vigil_events_rejected_total"), float64(bad)},
		{"vigil_events_deadlettered_total", m["vigil_events_deadlettered_total"], float64(bad)},
		{"dead-letter stream messages", float64(c.streamMsgs(t, ingest.DeadLetterStream)), float64(bad)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if bad > 0 {
		for _, reason := range []string{"malformed_json", "missing_field", "unknown_field", "duplicate_field",
			"future_timestamp", "invalid_utf8", "service_mismatch", "too_large"} {
			if m[fmt.Sprintf(`vigil_events_rejected_total{reason=%q}`, reason)] == 0 {
				t.Errorf("no event rejected as %s", reason)
			}
		}
	}
	v.stop()
	ns.stop()
	return d
}

// streamMsgs returns how many messages stream holds.
func (c *client) streamMsgs(t testing.TB, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info.State.Msgs
}
