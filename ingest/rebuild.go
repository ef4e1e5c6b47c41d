package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replayed says what Rebuild (and CatchUp) applied to a sink: Events
// events from the messages with stream sequences First to Last (0 when
// none), stored since Since.
type Replayed struct {
	Since       time.Time
	Events      int
	First, Last uint64
	// made is when the events stream that First and Last refer to was
	// created: a stream deleted and created again numbers from 1.
	made time.Time
	// ids are the message ids of the replayed messages' duplicate
	// window, so that the replay drops the duplicates Run dropped.
	ids *dedup
}

// Rebuild replays events stored since `since` into sink, up to the last
// message the durable consumer delivered, so that detection windows hold
// what they held before a restart; newer messages come through Run as usual.
//
// The bound is the last delivered message, not the acknowledged ones: after
// a crash, messages delivered but not yet acknowledged were applied (and
// may have raised alerts) before the crash, so the rebuilt state must hold
// them too. JetStream delivers them again after ack_wait; once the caller
// puts sink in force and calls SkipReplayed, Run counts them in metrics but
// does not pass them to the sink a second time.
//
// Nothing is counted in metrics here (they were counted when first applied)
// and rejected lines are skipped (they were dead-lettered then). Messages
// stored up to ingest.duplicate_window before since are read too, only for
// their Nats-Msg-Id: a duplicate Run dropped is dropped again, and the
// consumer remembers the ids of the window after a restart.
func (c *Consumer) Rebuild(ctx context.Context, since time.Time, sink Sink) (Replayed, error) {
	return c.replayUpToDelivered(ctx, Replayed{Since: since}, sink)
}

// CatchUp extends r, a replay into sink that Run was not applying to, with
// the messages delivered since: call it while Paused, right before putting
// sink in force, so that a long Rebuild need not pause intake.
func (c *Consumer) CatchUp(ctx context.Context, r Replayed, sink Sink) (Replayed, error) {
	return c.replayUpToDelivered(ctx, r, sink)
}

// SkipReplayed makes Run count, and not apply, the messages of r when
// JetStream delivers them: their events were applied by the replay. A
// consumer that has seen no message id yet (it was just started) takes
// the replay's ids of the duplicate window.
func (c *Consumer) SkipReplayed(r Replayed) {
	c.applied.addRange(r.First, r.Last)
	if r.ids != nil && c.dedup.Load().size() == 0 {
		c.dedup.Store(r.ids)
	}
}

func (c *Consumer) replayUpToDelivered(ctx context.Context, r Replayed, sink Sink) (Replayed, error) {
	stream, err := c.js.Stream(ctx, EventsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return r, nil // first start: nothing to rebuild
	}
	if err != nil {
		return r, fmt.Errorf("read the events stream: %w", err)
	}
	r = r.of(stream.CachedInfo().Created)
	upTo, err := c.delivered(ctx, stream)
	if err != nil || upTo == 0 || upTo <= r.Last {
		return r, err
	}
	if r.ids == nil {
		r.ids = newDedup(c.cfg.DuplicateWindow, MaxDedupIDs)
	}
	// A short inactive threshold: a cluster standby replays every second,
	// and each replay leaves its last ephemeral consumer to the server.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{EventsSubjects}, InactiveThreshold: 10 * time.Second}
	if r.Last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.Last+1
	} else {
		from := r.Since.Add(-c.cfg.DuplicateWindow)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	n, first, last, err := c.replay(ctx, stream, cfg, upTo, r, sink)
	r.Events += n
	if r.First == 0 {
		r.First = first
	}
	if last > 0 {
		r.Last = last
	}
	return r, err
}

// of returns r for the events stream created at made: r itself when r
// numbers that stream's messages, or else a replay that starts again from
// r.Since (the stream was deleted and created again, and its new messages
// are numbered from 1), having applied r.Events.
func (r Replayed) of(made time.Time) Replayed {
	if !r.made.IsZero() && !r.made.Equal(made) {
		r = Replayed{Since: r.Since, Events: r.Events}
	}
	r.made = made
	return r
}

// replay applies the events of the messages cfg delivers, up to stream
// sequence upTo, but those stored before r.Since and the duplicates. It
// returns the number of events applied and the stream sequences of the
// first message applied and the last one read.
func (c *Consumer) replay(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, upTo uint64, r Replayed, sink Sink) (n int, first, last uint64, err error) {
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("replay the events stream: %w", err)
	}
	rp := NewReplayer(c.cfg.Limits(), sink)
	defer rp.Close()
	want := c.cfg.FetchBatch
	for {
		// Stored messages are there to take: do not wait for more.
		batch, err := oc.FetchNoWait(want)
		if err != nil {
			return n, first, last, fmt.Errorf("replay the events stream: %w", err)
		}
		got, bytes, done := 0, 0, false
		for msg := range batch.Messages() {
			got++
			bytes += len(msg.Data())
			seq, at := stored(msg)
			if seq == 0 || seq > upTo {
				done = true
				continue
			}
			last = seq
			done = done || last == upTo
			if r.ids.duplicate(msg.Subject(), msgID(msg), seq, at) || at.Before(r.Since) {
				continue
			}
			valid, _ := rp.Message(msg.Data(), msg.Subject(), at, nil)
			n += valid
			if first == 0 {
				first = last
			}
		}
		if done || got == 0 || ctx.Err() != nil {
			return n, first, last, ctx.Err()
		}
		want = replayFetch(c.cfg.FetchBatch, got, bytes)
	}
}

// replayFetchBytes is about how much one fetch of a replay asks the server
// for. A member taking over replays while its live consumer's messages come
// on the same connection; together they must stay well under the server's
// buffer for a connection (64 MiB by default), or the server closes it as a
// slow consumer: fetch_batch messages of 100 events of 400 bytes are 40 MB.
// (The live consumer's pull is not bounded in bytes: nats.go's byte-limited
// pull stalled after the consumer's leader moved to another NATS node.)
const replayFetchBytes = 8 << 20

// replayFetch is how many messages the next fetch asks for: as many as
// make about replayFetchBytes at the size of the last got messages
// (bytes in all), at least one and at most fetchBatch.
func replayFetch(fetchBatch, got, bytes int) int {
	if bytes <= 0 || got <= 0 {
		return fetchBatch
	}
	return max(1, min(fetchBatch, replayFetchBytes*got/bytes))
}

// delivered returns the stream sequence of the last message the durable
// consumer delivered, or 0 when it does not exist yet.
func (c *Consumer) delivered(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	cons, err := stream.Consumer(ctx, c.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the durable consumer %s: %w", c.cfg.Consumer, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the durable consumer %s: %w", c.cfg.Consumer, err)
	}
	return info.Delivered.Stream, nil
}
