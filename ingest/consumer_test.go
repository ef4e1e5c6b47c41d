package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestRunAppliesEveryEventOnceInOrder(t *testing.T) {
	cases := []struct {
		name          string
		tune          func(*ingest.Config)
		before, after []int // events per message, published before and after Run binds
	}{
		{name: "one event per message", before: []int{1, 1, 1}, after: []int{1, 1}},
		{name: "NDJSON messages", before: []int{3, 5}, after: []int{4, 2}},
		{
			name:   "mixed messages, pulls smaller than the backlog",
			tune:   func(c *ingest.Config) { c.FetchBatch = 2 },
			before: []int{1, 4, 1, 1, 3, 1, 2}, after: []int{1, 5, 1},
		},
		{name: "a message of more events than a chunk", before: []int{1, 1500, 1}, after: []int{1100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testkit.RunNATS(t)
			_, js := testkit.Connect(t, s)
			cfg := testConfig()
			if tc.tune != nil {
				tc.tune(&cfg)
			}
			ensureStreams(t, js, cfg)
			before, after := messages("before", tc.before...), messages("after", tc.after...)
			publish(t, js, before)

			sink := &recorder{}
			c, _, reg := newConsumer(t, s, cfg, sink)
			run(t, c)
			testkit.WaitFor(t, waitTime, "the backlog applied", sink.holds(len(lines(before))))
			publish(t, js, after)
			want := lines(before, after)
			testkit.WaitFor(t, waitTime, "every event applied", sink.holds(len(want)))
			testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))

			sameLines(t, "sink", sink.Lines(), want)
			counted(t, reg, float64(len(want)), "vigil_events_received_total")
		})
	}
}

// TestRedeliveryOfSettledMessages makes the server deliver again messages
// the consumer already applied and acknowledged, as a server restarted
// before it stored the acknowledgements does (here the durable consumer is
// recreated, which forgets them all). They must be acknowledged again but
// neither applied nor counted a second time; newer messages still flow.
func TestRedeliveryOfSettledMessages(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	first := messages("first", 1, 3, 2)
	publish(t, js, first)

	sink := &recorder{}
	c, _, reg := newConsumer(t, s, cfg, sink)
	stop := run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, ingest.EventsStream, cfg.Consumer); err != nil {
		t.Fatal(err)
	}
	later := messages("later", 2)
	publish(t, js, later)
	run(t, c) // creates the consumer again: everything is delivered anew
	testkit.WaitFor(t, waitTime, "every message acknowledged again", settled(c))

	sameLines(t, "sink", sink.Lines(), lines(first, later))
	if got := metric(t, reg, "vigil_ingest_redelivered_messages_total"); got != float64(len(first)) {
		t.Errorf("vigil_ingest_redelivered_messages_total = %v, want %d", got, len(first))
	}
	counted(t, reg, float64(len(lines(first, later))), "vigil_events_received_total")
}

// TestServiceWithDots checks that a service name containing dots is
// matched against its whole subject after vigil.events., not its last
// token.
func TestServiceWithDots(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	ts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	line := func(service, id string) []byte {
		return []byte(`{"ts":"` + ts + `","service":"` + service + `","request_id":"` + id + `","method":"GET","endpoint":"/v1/x","status":200}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{ingest.SubjectPrefix + "billing.eu", line("billing.eu", "whole")}, // valid
		{ingest.SubjectPrefix + "billing.eu", line("eu", "last-token")},    // service_mismatch
		{ingest.SubjectPrefix + "eu", line("billing.eu", "too-long")},      // service_mismatch
	} {
		if _, err := js.Publish(ctx, m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}
	sink := &recorder{}
	c, _, reg := newConsumer(t, s, cfg, sink)
	run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	got := sink.Lines()
	if len(got) != 1 || !strings.Contains(got[0], `"request_id":"whole"`) {
		t.Errorf("applied %v, want only the event whose service is billing.eu", got)
	}
	counted(t, reg, 2, "vigil_events_rejected_total", "reason", string(event.ReasonServiceMismatch))
}

// TestCaughtUp drives the consumer's clock by hand: each round moves it a
// second, which makes the consumer ask the server for its state once.
func TestCaughtUp(t *testing.T) {
	t.Run("false before Run and while a backlog is applied", func(t *testing.T) {
		s := testkit.RunNATS(t)
		_, js := testkit.Connect(t, s)
		cfg := testConfig()
		ensureStreams(t, js, cfg)
		backlog := messages("backlog", 1, 3, 1, 2, 1)
		publish(t, js, backlog)

		// The sink holds the first event until released, so the test
		// decides when the backlog is worked through.
		entered, release := make(chan struct{}), make(chan struct{})
		var enteredOnce, releaseOnce sync.Once
		sink := &recorder{hook: func(*event.Event) {
			enteredOnce.Do(func() { close(entered) })
			<-release
		}}
		clk := clock.NewFake(time.Now())
		c, _, _ := newConsumerWith(t, s, cfg, ingest.Options{Sink: sink, Clock: clk})
		if c.CaughtUp() {
			t.Error("CaughtUp before Run")
		}
		stop := run(t, c)
		releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
		t.Cleanup(releaseAll) // before stop: Run waits for the sink

		select {
		case <-entered:
		case <-time.After(waitTime):
			t.Fatal("the sink got no event in 5s")
		}
		if err := c.Ready(); err != nil {
			t.Fatalf("Ready while the backlog is applied: %v", err)
		}
		for range 10 { // well past the grace after connecting
			pollRound(t, c, clk)
			if c.CaughtUp() {
				t.Fatal("CaughtUp while the sink holds the backlog's first event")
			}
		}
		releaseAll()
		pollUntilCaughtUp(t, c, clk, "the backlog applied")
		// Caught up means applied: no waiting for the sink here.
		sameLines(t, "sink once caught up", sink.Lines(), lines(backlog))
		testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
		stop()
		if c.CaughtUp() {
			t.Error("CaughtUp after Run returned")
		}
	})

	t.Run("true after the grace once bound to an empty stream, and after live events", func(t *testing.T) {
		s := testkit.RunNATS(t)
		_, js := testkit.Connect(t, s)
		cfg := testConfig()
		sink := &recorder{}
		clk := clock.NewFake(time.Now())
		c, _, _ := newConsumerWith(t, s, cfg, ingest.Options{Sink: sink, Clock: clk})
		run(t, c)
		testkit.WaitFor(t, waitTime, "bound", c.Ready)
		// Publishers that held events reconnect within the grace: the
		// server's "nothing left" is not believed before it has passed.
		if rounds := pollUntilCaughtUp(t, c, clk, "caught up with an empty stream"); rounds < 5 {
			t.Errorf("caught up after %d seconds, within the 5 s grace after connecting", rounds)
		}

		live := messages("live", 2, 1)
		publish(t, js, live)
		testkit.WaitFor(t, waitTime, "live events applied", sink.holds(len(lines(live))))
		pollUntilCaughtUp(t, c, clk, "caught up after live events")
		sameLines(t, "sink", sink.Lines(), lines(live))
	})

	t.Run("false while live events delivered after an idle spell wait", func(t *testing.T) {
		s := testkit.RunNATS(t)
		_, js := testkit.Connect(t, s)
		cfg := testConfig()
		var block atomic.Bool
		entered, release := make(chan struct{}, 1), make(chan struct{})
		var releaseOnce sync.Once
		sink := &recorder{hook: func(*event.Event) {
			if block.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-release
			}
		}}
		clk := clock.NewFake(time.Now())
		c, _, _ := newConsumerWith(t, s, cfg, ingest.Options{Sink: sink, Clock: clk})
		run(t, c)
		t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
		pollUntilCaughtUp(t, c, clk, "caught up with an empty stream")

		block.Store(true)
		first := messages("first", 1)
		publish(t, js, first)
		select {
		case <-entered:
		case <-time.After(waitTime):
			t.Fatal("the sink got no event in 5s")
		}
		more := messages("more", 1, 1, 1, 1, 1)
		publish(t, js, more)
		testkit.WaitFor(t, waitTime, "the later messages delivered to the client", delivered(c))
		for range 3 {
			pollRound(t, c, clk)
			if c.CaughtUp() {
				t.Fatal("CaughtUp while the sink holds one event and five more messages wait in the client")
			}
		}
		releaseOnce.Do(func() { close(release) })
		pollUntilCaughtUp(t, c, clk, "caught up")
		sameLines(t, "sink once caught up", sink.Lines(), lines(first, more))
	})
}

// pollRound moves clk on by one second and waits until c has asked the
// server for its state in the round that tick started.
func pollRound(t *testing.T, c *ingest.Consumer, clk *clock.Fake) {
	t.Helper()
	testkit.WaitUntil(t, waitTime, "the consumer's poll ticker", func() bool { return clk.Pending() > 0 })
	n := c.Polls()
	clk.Advance(time.Second)
	testkit.WaitUntil(t, waitTime, "a poll round", func() bool { return c.Polls() > n })
}

// pollUntilCaughtUp runs poll rounds until c is caught up, at most 20, and
// returns how many it took.
func pollUntilCaughtUp(t *testing.T, c *ingest.Consumer, clk *clock.Fake, what string) int {
	t.Helper()
	for round := 1; round <= 20; round++ {
		pollRound(t, c, clk)
		if c.CaughtUp() {
			return round
		}
	}
	t.Fatalf("not %s after 20 s of poll rounds", what)
	return 0
}

func TestPausedSwapsSinkBetweenEvents(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)

	// The old sink holds the first event of a large message until
	// released, so that Paused is called while its chunk is applied. Any
	// event applied while fn runs is counted.
	big := messages("big", 1000)
	entered, release := make(chan struct{}), make(chan struct{})
	var enteredOnce, releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	var pausing atomic.Bool
	var appliedWhilePaused atomic.Int64
	check := func(*event.Event) {
		if pausing.Load() {
			appliedWhilePaused.Add(1)
		}
	}
	oldSink := &recorder{hook: func(ev *event.Event) {
		check(ev)
		if ev.RequestID == big[0][0].RequestID {
			enteredOnce.Do(func() { close(entered) })
			<-release
		}
	}}
	newSink := &recorder{hook: check}
	c, _, _ := newConsumer(t, s, cfg, oldSink)
	run(t, c)
	t.Cleanup(releaseAll) // before stop: Run waits for the sink

	before := messages("before", 1, 3, 2)
	publish(t, js, before)
	publish(t, js, big)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink got no event of the large message in 5s")
	}

	paused := messages("paused", 2, 1, 3)
	held := 0
	go releaseAll()
	c.Paused(func() {
		pausing.Store(true)
		defer pausing.Store(false)
		publish(t, js, paused)
		testkit.WaitFor(t, waitTime, "every message delivered", delivered(c))
		held = len(oldSink.Lines())
		c.SetSink(newSink)
	})
	after := messages("after", 1, 2)
	publish(t, js, after)

	want := lines(before, big, paused, after)
	testkit.WaitFor(t, waitTime, "every event applied", func() error {
		if n := len(oldSink.Lines()) + len(newSink.Lines()); n < len(want) {
			return fmt.Errorf("sinks hold %d events, want %d", n, len(want))
		}
		return nil
	})
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))

	sameLines(t, "old sink, then new sink", append(oldSink.Lines(), newSink.Lines()...), want)
	if n := appliedWhilePaused.Load(); n != 0 {
		t.Errorf("%d events applied while paused", n)
	}
	if n := len(oldSink.Lines()); n != held {
		t.Errorf("old sink got %d events after the swap", n-held)
	}
	if n, want := len(newSink.Lines()), len(lines(paused, after)); n < want {
		t.Errorf("new sink holds %d events, want at least the %d published while and after paused", n, want)
	}
}

// waitPublished waits until JetStream stored every message of acks.
func waitPublished(t *testing.T, acks []jetstream.PubAckFuture) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish %d: %v", i, err)
		case <-timeout:
			t.Fatalf("publish %d not acknowledged in 5s", i)
		}
	}
}

// delivered reports nil once the durable consumer has delivered every
// message of the events stream.
func delivered(c *ingest.Consumer) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		si, ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.Delivered.Stream != si.State.LastSeq {
			return fmt.Errorf("delivered %d of last seq %d", ci.Delivered.Stream, si.State.LastSeq)
		}
		return nil
	}
}
