package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

// Replayed says what Rebuild (and CatchUp) applied to a sink: Events
// events from the messages with stream sequences First to Last (0 when
// none), stored since Since.
type Replayed struct {
	Since       time.Time
	Events      int
	First, Last uint64
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

// replay applies the events of the messages cfg delivers, up to stream
// sequence upTo, but those stored before r.Since and the duplicates. It
// returns the number of events applied and the stream sequences of the
// first message applied and the last one read.
func (c *Consumer) replay(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, upTo uint64, r Replayed, sink Sink) (n int, first, last uint64, err error) {
	oc, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("replay the events stream: %w", err)
	}
	dec := newDecoder(c.cfg)
	for {
		// Stored messages are there to take: do not wait for more.
		batch, err := oc.FetchNoWait(c.cfg.FetchBatch)
		if err != nil {
			return n, first, last, fmt.Errorf("replay the events stream: %w", err)
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
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
			n += c.replayMessage(dec, msg, at, sink)
			if first == 0 {
				first = last
			}
		}
		if done || got == 0 || ctx.Err() != nil {
			return n, first, last, ctx.Err()
		}
	}
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

// replayMessage applies the valid events of msg to sink as decodeMessage
// did when the message was consumed: the future-skew limit judged against
// when the message was stored, and each event's Received set to that time,
// so that the rebuilt engine's watermark moves exactly as the live one's.
func (c *Consumer) replayMessage(dec *event.Decoder, msg jetstream.Msg, at time.Time, sink Sink) int {
	valid, _ := dec.DecodeMessage(msg.Data(), subjectService(msg.Subject()), at, func(ev *event.Event) {
		ev.Received = at
		sink.Process(ev)
	}, func(*event.RejectError, []byte) {})
	return valid
}
