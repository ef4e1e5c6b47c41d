package ingest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestResumeFromACheckpoint restarts a consumer from a checkpoint of its
// sink: only the messages after the checkpoint are replayed into the
// restored sink, a retry of a message from before the checkpoint is still
// dropped as a duplicate, and what JetStream delivers again is counted but
// never applied twice, whether it came before or after the checkpoint.
func TestResumeFromACheckpoint(t *testing.T) {
	cases := []struct {
		name string
		// covered: the checkpoint was taken after the crashed instance had
		// applied the messages it never acknowledged.
		covered bool
		// skew is how far ahead of the server's clock the checkpoint's
		// taker's clock was.
		skew time.Duration
	}{
		{name: "crash after the checkpoint"},
		{name: "checkpoint covers the unacknowledged messages", covered: true},
		{name: "the taker's clock an hour ahead", skew: time.Hour},
		{name: "the taker's clock an hour behind", skew: -time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testkit.RunNATS(t)
			_, js := testkit.Connect(t, s)
			cfg := testConfig()
			ensureStreams(t, js, cfg)

			// A first run applies and acknowledges these; then the
			// checkpoint is taken.
			before := messages("before", 2, 1)
			publish(t, js, before)
			publishWithID(t, js, "api", "retry-1", serviceEvent("api", "first-try"))
			first := firstRun(t, s, cfg)
			mark := first.Position(ingest.Replayed{}).Mark(time.Now().Add(tc.skew))
			if mark.Seq != 3 {
				t.Fatalf("checkpoint at sequence %d, want 3", mark.Seq)
			}

			// Then the instance crashes with these delivered and not
			// acknowledged.
			crashed := messages("crashed", 2, 1)
			publish(t, js, crashed)
			deliverWithoutAck(t, js, cfg, len(crashed))
			if tc.covered {
				mark.Seq += uint64(len(crashed))
			}
			// A retry of the message from before the checkpoint, and
			// messages after the crash.
			publishWithID(t, js, "api", "retry-1", serviceEvent("api", "second-try"))
			later := messages("later", 1, 2)
			publish(t, js, later)

			sink := &recorder{}
			c, _, reg := newConsumer(t, s, cfg, sink)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := c.Resume(ctx, time.Now().Add(-time.Hour), mark, sink)
			if err != nil {
				t.Fatalf("Resume: %v", err)
			}
			replayed := lines(crashed)
			if tc.covered {
				replayed = nil // in the checkpoint already
			}
			if r.Events != len(replayed) {
				t.Errorf("Resume replayed %d events, want %d", r.Events, len(replayed))
			}
			sameLines(t, "sink after Resume", sink.Lines(), replayed)

			c.SkipReplayed(r)
			run(t, c)
			testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
			sameLines(t, "sink after Run", sink.Lines(), append(replayed, lines(later)...))
			counted(t, reg, float64(len(lines(crashed, later))), "vigil_events_received_total")
			counted(t, reg, 1, "vigil_ingest_duplicate_messages_total")
		})
	}
}

// TestResumeRefusesAnotherStream: a checkpoint of the events stream before
// it was deleted and created again numbers other messages; Resume applies
// nothing and says so, for the caller to rebuild in full.
func TestResumeRefusesAnotherStream(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	publish(t, js, messages("old", 2))
	c, _, _ := newConsumer(t, s, cfg, &recorder{})
	stop := run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	stop()
	mark := c.Position(ingest.Replayed{}).Mark(time.Now())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, ingest.EventsStream); err != nil {
		t.Fatal(err)
	}
	sink := &recorder{}
	if _, err := c.Resume(ctx, time.Now().Add(-time.Hour), mark, sink); !errors.Is(err, ingest.ErrOtherStream) {
		t.Fatalf("Resume without the stream: %v, want ErrOtherStream", err)
	}
	ensureStreams(t, js, cfg)
	publish(t, js, messages("new", 3))
	if _, err := c.Resume(ctx, time.Now().Add(-time.Hour), mark, sink); !errors.Is(err, ingest.ErrOtherStream) {
		t.Fatalf("Resume on the stream created again: %v, want ErrOtherStream", err)
	}
	if got := sink.Lines(); len(got) != 0 {
		t.Errorf("Resume applied %d events of another stream", len(got))
	}
}

// TestResumeAfterTheCheckpointsLastMessageIsGone: retention (or a
// deletion) removed the last message the checkpoint holds; Resume still
// applies exactly the messages after it.
func TestResumeAfterTheCheckpointsLastMessageIsGone(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)
	publish(t, js, messages("before", 1, 2, 1))
	mark := firstRun(t, s, cfg).Position(ingest.Replayed{}).Mark(time.Now())
	after := messages("after", 2, 1)
	publish(t, js, after)
	deliverWithoutAck(t, js, cfg, len(after))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, ingest.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, mark.Seq); err != nil {
		t.Fatal(err)
	}
	sink := &recorder{}
	c, _, _ := newConsumer(t, s, cfg, sink)
	if _, err := c.Resume(ctx, time.Now().Add(-time.Hour), mark, sink); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	sameLines(t, "sink after Resume", sink.Lines(), lines(after))
}
