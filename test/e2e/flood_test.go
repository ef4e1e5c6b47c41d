package e2e

import (
	"context"
	"errors"
	"fmt"
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

// drainMix fills a fresh stream with valid single-event messages and bad
// ones interleaved, lets a fresh daemon drain it, checks every count, and
// returns the drain time.
func drainMix(t *testing.T, valid, bad int) time.Duration {
	ns := startNATSServer(t)
	c := connect(t, ns.url())
	c.ensureStreams(t)
	good := normalMsgs(1)
	total := valid + bad
	c.prefill(t, total, func(i int) *nats.Msg {
		if bad > 0 && i%2 == 1 {
			return malformed(i / 2)
		}
		return good(i)
	})
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
