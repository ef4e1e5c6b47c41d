package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Mark is where a checkpoint of a sink stands in the events stream: the
// sink holds the events of every message up to Seq of the stream created
// at Stream, and of no later one. Taken is when the checkpoint was taken,
// on the taker's clock.
type Mark struct {
	Seq    uint64    `json:"seq"`
	Stream time.Time `json:"stream_created"`
	Taken  time.Time `json:"taken"`
}

// Mark returns where r stands, for a checkpoint of its sink taken at
// taken. Take it and the checkpoint while Paused, from Position.
func (r Replayed) Mark(taken time.Time) Mark {
	return Mark{Seq: r.Last, Stream: r.made, Taken: taken}
}

// ErrOtherStream says that a checkpoint's stream sequences number the
// messages of an events stream that has since been deleted (and maybe
// created again): they say nothing of the stream's messages now.
var ErrOtherStream = errors.New("the checkpoint was taken on an events stream that no longer exists")

// Resume is Rebuild for a sink restored from a checkpoint taken at m: it
// applies the messages after m.Seq stored since `since`, up to the last
// message the durable consumer delivered, and reads the messages of the
// duplicate window before them only for their ids. The Replayed it
// returns covers every message up to its Last, those before the
// checkpoint included, so that SkipReplayed skips any of them JetStream
// delivers again (applied before the checkpoint, then not acknowledged
// before a crash).
//
// Resume applies nothing and returns ErrOtherStream when the events
// stream is not the one m numbers.
func (c *Consumer) Resume(ctx context.Context, since time.Time, m Mark, sink Sink) (Replayed, error) {
	stream, err := c.js.Stream(ctx, EventsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Replayed{}, ErrOtherStream
	}
	if err != nil {
		return Replayed{}, fmt.Errorf("read the events stream: %w", err)
	}
	if !stream.CachedInfo().Created.Equal(m.Stream) {
		return Replayed{}, ErrOtherStream
	}
	r := Replayed{Since: since, made: m.Stream, resumed: m}
	// The duplicate window before the checkpoint is timed by the server's
	// clock, as JetStream stored its last message, not by Vigil's (which
	// took the checkpoint): a skew between them must not make the replay
	// start after messages it has to apply. A last message already gone
	// (retention) leaves no window to read: a service's retry, within
	// ingest.duplicate_window, of a message from before the checkpoint is
	// then applied again.
	if msg, err := stream.GetMsg(ctx, m.Seq); err == nil {
		r.idsFrom = msg.Time.Add(-c.cfg.DuplicateWindow)
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return Replayed{}, fmt.Errorf("read the events stream: %w", err)
	}
	r, err = c.replayUpToDelivered(ctx, r, sink)
	r.First, r.Last = 1, max(r.Last, m.Seq)
	return r, err
}
