package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestRebuildThenRun(t *testing.T) {
	cases := []struct {
		name string
		// sinceAcked starts the replay after the acknowledged messages, so
		// that only the ones delivered before the crash are replayed.
		sinceAcked bool
	}{
		{name: "since before every message"},
		{name: "since after the acknowledged messages", sinceAcked: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testkit.RunNATS(t)
			_, js := testkit.Connect(t, s)
			cfg := testConfig()
			ensureStreams(t, js, cfg)
			since := time.Now().Add(-time.Minute)

			// A first run applies and acknowledges these.
			acked := messages("acked", 1, 3, 2)
			publish(t, js, acked)
			firstRun(t, s, cfg)
			if tc.sinceAcked {
				since = time.Now() // JetStream stamped the acknowledged messages before
			}

			// Then the consumer crashes with these delivered and not
			// acknowledged; the last holds no valid event.
			crashed := messages("crashed", 2, 1, 3)
			publish(t, js, crashed)
			publishData(t, js, []byte("not json"))
			deliverWithoutAck(t, js, cfg, len(crashed)+1)

			// These arrive after the crash.
			later := messages("later", 1, 4, 1)
			publish(t, js, later)

			sink := &recorder{}
			c, _, reg := newConsumer(t, s, cfg, sink)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := c.Rebuild(ctx, since, sink)
			if err != nil {
				t.Fatalf("Rebuild: %v", err)
			}
			c.SkipReplayed(r)
			replayed := lines(acked, crashed)
			if tc.sinceAcked {
				replayed = lines(crashed)
			}
			if r.Events != len(replayed) {
				t.Errorf("Rebuild replayed %d events, want %d", r.Events, len(replayed))
			}
			sameLines(t, "sink after Rebuild", sink.Lines(), replayed)
			if got := metric(t, reg, "vigil_events_received_total"); got != 0 {
				t.Errorf("vigil_events_received_total = %v after Rebuild, want 0", got)
			}

			run(t, c)
			// Settled means the crashed messages came again and were
			// acknowledged; they are counted, but not applied twice.
			testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
			sameLines(t, "sink after Run", sink.Lines(), append(replayed, lines(later)...))
			received := len(lines(crashed, later))
			counted(t, reg, float64(received), "vigil_events_received_total") // the crashed and later events
		})
	}
}

// deliverWithoutAck has the durable consumer deliver its next n messages
// and acknowledges none, like a Vigil that crashed after applying them.
func deliverWithoutAck(t *testing.T, js jetstream.JetStream, cfg ingest.Config, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, ingest.EventsStream, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	before, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != n {
		t.Fatalf("fetched %d messages, want %d (%v)", got, n, batch.Error())
	}
	after, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Delivered.Stream != before.Delivered.Stream+uint64(n) || after.AckFloor.Stream != before.AckFloor.Stream {
		t.Fatalf("consumer delivered %d and acknowledged %d, want %d and %d",
			after.Delivered.Stream, after.AckFloor.Stream, before.Delivered.Stream+uint64(n), before.AckFloor.Stream)
	}
}

func TestRebuildWithoutHistory(t *testing.T) {
	cases := []struct {
		name    string
		streams bool // the streams exist, the durable consumer does not
	}{
		{name: "no stream yet"},
		{name: "no consumer yet", streams: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testkit.RunNATS(t)
			_, js := testkit.Connect(t, s)
			cfg := testConfig()
			if tc.streams {
				ensureStreams(t, js, cfg)
				publish(t, js, messages("stored", 1, 2))
			}
			sink := &recorder{}
			c, _, _ := newConsumer(t, s, cfg, nil)
			r, err := c.Rebuild(t.Context(), time.Now().Add(-time.Hour), sink)
			if err != nil || r.Events != 0 || r.Last != 0 {
				t.Errorf("Rebuild = %+v, %v; want nothing replayed", r, err)
			}
			if got := sink.Lines(); len(got) != 0 {
				t.Errorf("sink got %d events, want none", len(got))
			}
		})
	}
}

// TestRebuildCatchUpAndSwap replays into a new sink while Run keeps
// applying to the old one, then, paused, catches up and swaps: what a rule
// reload does. The new sink must end with every event exactly once, in
// order, and the old one must get nothing after the swap.
func TestRebuildCatchUpAndSwap(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	before, during, after := messages("before", 2, 1), messages("during", 1, 3), messages("after", 2)

	old := &recorder{}
	c, _, _ := newConsumer(t, s, cfg, old)
	run(t, c)
	publish(t, js, before)
	testkit.WaitFor(t, waitTime, "the first events applied", old.holds(len(lines(before))))

	next := &recorder{}
	r, err := c.Rebuild(t.Context(), time.Now().Add(-time.Hour), next)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	publish(t, js, during) // applied to the old sink only
	testkit.WaitFor(t, waitTime, "the events published during the rebuild applied", old.holds(len(lines(before, during))))
	c.Paused(func() {
		if r, err = c.CatchUp(t.Context(), r, next); err != nil {
			t.Errorf("CatchUp: %v", err)
		}
		c.SetSink(next)
		c.SkipReplayed(r)
	})
	publish(t, js, after)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))

	sameLines(t, "new sink", next.Lines(), lines(before, during, after))
	sameLines(t, "old sink", old.Lines(), lines(before, during))
	if r.Events != len(lines(before, during)) {
		t.Errorf("replayed %d events, want %d", r.Events, len(lines(before, during)))
	}
}

// TestReceivedIsWhenStored checks that every event reaches the sink with
// Received set to when JetStream stored its message, whether Run consumes
// it live or Rebuild replays it, so that detection times it alike.
func TestReceivedIsWhenStored(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	publish(t, js, messages("m", 2, 1, 3))
	stream, err := js.Stream(t.Context(), ingest.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var want []time.Time
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		for range []int{2, 1, 3}[seq-1] {
			want = append(want, m.Time)
		}
	}
	receivedBy := func(got *[]time.Time, mu *sync.Mutex) *recorder {
		return &recorder{hook: func(ev *event.Event) {
			mu.Lock()
			defer mu.Unlock()
			*got = append(*got, ev.Received)
		}}
	}
	var mu sync.Mutex
	var live, replayed []time.Time
	c, _, _ := newConsumer(t, s, cfg, receivedBy(&live, &mu))
	run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	if _, err := c.Rebuild(t.Context(), time.Now().Add(-time.Hour), receivedBy(&replayed, &mu)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, got := range map[string][]time.Time{"live": live, "replayed": replayed} {
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", name, len(got), len(want))
		}
		for i := range want {
			if !got[i].Equal(want[i]) {
				t.Errorf("%s: event %d Received = %v, want the stored time %v", name, i, got[i], want[i])
			}
		}
	}
}

// A standby follows the stream with CatchUp from where its last round
// ended. When the events stream is deleted and created again (an operator
// starting over), the new stream numbers its messages from 1: the follower
// must read them rather than wait for the new stream to pass the old
// position.
func TestFollowingSurvivesTheStreamCreatedAgain(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	first, second := messages("first", 3, 2, 4), messages("second", 2)

	active, _, _ := newConsumer(t, s, cfg, &recorder{})
	run(t, active)
	publish(t, js, first)
	testkit.WaitFor(t, waitTime, "the first stream's messages acknowledged", settled(active))

	standby := &recorder{}
	follower, _, _ := newConsumer(t, s, cfg, nil)
	r, err := follower.CatchUp(t.Context(), ingest.Replayed{Since: time.Now().Add(-time.Hour)}, standby)
	if err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	sameLines(t, "standby after following the first stream", standby.Lines(), lines(first))

	if err := js.DeleteStream(t.Context(), ingest.EventsStream); err != nil {
		t.Fatal(err)
	}
	// The active consumer binds again, which creates the stream again.
	testkit.WaitFor(t, waitTime, "the events stream created again", func() error {
		_, err := js.Stream(t.Context(), ingest.EventsStream)
		return err
	})
	publish(t, js, second)
	testkit.WaitFor(t, waitTime, "the new stream's messages acknowledged", settled(active))

	if r, err = follower.CatchUp(t.Context(), r, standby); err != nil {
		t.Fatalf("CatchUp after the stream was created again: %v", err)
	}
	sameLines(t, "standby after following the new stream", standby.Lines(), lines(first, second))
	if r.First != 1 || r.Last != uint64(len(second)) {
		t.Errorf("the follow position is %d-%d, want 1-%d of the new stream", r.First, r.Last, len(second))
	}
}

// After a crash (or a takeover from a member that died), the messages the
// old process was delivered and never acknowledged come again only after
// ack_wait. A consumer that replayed them into its engine is caught up
// without waiting for them, so that its watermark moves with the clock
// and alerts resolve on time; one that did not replay them is not.
func TestCaughtUpWithoutWaitingForWhatItReplayed(t *testing.T) {
	for _, replayed := range []bool{true, false} {
		t.Run(fmt.Sprintf("replayed=%v", replayed), func(t *testing.T) {
			s := testkit.RunNATS(t)
			_, js := testkit.Connect(t, s)
			cfg := testConfig()
			cfg.AckWait = time.Minute // longer than the test
			ensureStreams(t, js, cfg)
			first, firstConn, _ := newConsumer(t, s, cfg, &recorder{})
			stopFirst := run(t, first)
			publish(t, js, messages("acked", 2, 3))
			testkit.WaitFor(t, waitTime, "first run acknowledged every message", settled(first))
			stopFirst()
			firstConn.Close()
			crashed := messages("crashed", 2, 1, 3)
			publish(t, js, crashed)
			deliverWithoutAck(t, js, cfg, len(crashed))

			c, _, _ := newConsumer(t, s, cfg, &recorder{})
			c.SetReconnectGrace(0)
			if replayed {
				r, err := c.Rebuild(t.Context(), time.Now().Add(-time.Hour), &recorder{})
				if err != nil {
					t.Fatal(err)
				}
				c.SkipReplayed(r)
			}
			run(t, c)
			if replayed {
				testkit.WaitUntil(t, waitTime, "caught up while the crashed messages await ack_wait", c.CaughtUp)
				return
			}
			testkit.WaitUntil(t, waitTime, "three polls of the consumer's state", func() bool { return c.Polls() >= 3 })
			if c.CaughtUp() {
				t.Fatal("caught up while messages it never applied await redelivery")
			}
		})
	}
}
