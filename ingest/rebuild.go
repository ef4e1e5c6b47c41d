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
	// resumed is set by Resume: the messages up to resumed.Seq were
	// applied before a checkpoint of the sink, and are read only for their
	// ids of the duplicate window, from idsFrom on (zero: none are read,
	// the replay starts after resumed.Seq).
	resumed Mark
	idsFrom time.Time
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
	switch {
	case r.Last > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.Last+1
	case r.resumed.Seq > 0 && !r.idsFrom.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &r.idsFrom
	case r.resumed.Seq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.resumed.Seq+1
	default:
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
//
// Each fetch asks for at most replayBytes (see livePullBytes): the first
// takes only as many messages as that many bytes hold at the largest size
// the server takes, and returns at once if there are none; the next ones
// bound their bytes on the server and ask for no more messages than the
// last one said were stored after it, so that none waits for messages to
// come.
func (c *Consumer) replay(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, upTo uint64, r Replayed, sink Sink) (n int, first, last uint64, err error) {
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("replay the events stream: %w", err)
	}
	rp := NewReplayer(c.cfg.Limits(), sink)
	defer rp.Close()
	limit := c.replayBytes()
	batch, err := oc.FetchNoWait(max(1, limit/int(c.nc.MaxPayload())))
	for {
		if err != nil {
			return n, first, last, fmt.Errorf("replay the events stream: %w", err)
		}
		got, after, done := 0, uint64(0), false
		for msg := range batch.Messages() {
			got++
			meta, merr := msg.Metadata()
			if merr != nil || meta.Sequence.Stream > upTo {
				done = true
				continue
			}
			seq, at := meta.Sequence.Stream, meta.Timestamp
			last, after = seq, meta.NumPending
			done = done || last == upTo
			if r.ids.duplicate(msg.Subject(), msgID(msg), seq, at) || at.Before(r.Since) || seq <= r.resumed.Seq {
				continue
			}
			valid, _ := rp.Message(msg.Data(), msg.Subject(), at, nil)
			n += valid
			if first == 0 {
				first = last
			}
		}
		if done || got == 0 || after == 0 || ctx.Err() != nil {
			return n, first, last, ctx.Err()
		}
		want := min(uint64(c.cfg.FetchBatch), after, upTo-last)
		batch, err = oc.Fetch(int(want), jetstream.FetchMaxBytes(limit), jetstream.FetchMaxWait(replayWait))
	}
}

// replayWait is how long a fetch of a replay waits for the messages it
// asks for: they are stored, so only one deleted meanwhile makes it wait.
const replayWait = 2 * time.Second

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
