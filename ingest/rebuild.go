package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

// Rebuild replays events stored since `since` into sink, up to the last
// message the durable consumer delivered, so that detection windows hold
// what they held before a restart; newer messages come through Run as usual.
//
// The bound is the last delivered message, not the acknowledged ones: after
// a crash, messages delivered but not yet acknowledged were applied (and
// may have raised alerts) before the crash, so the rebuilt state must hold
// them too. JetStream delivers them again after ack_wait; Run then counts
// them in metrics but does not pass them to the sink a second time.
//
// Nothing is counted in metrics here (they were counted when first applied)
// and rejected lines are skipped (they were dead-lettered then). It returns
// the number of events replayed.
func (c *Consumer) Rebuild(ctx context.Context, since time.Time, sink Sink) (int, error) {
	stream, err := c.js.Stream(ctx, EventsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // first start: nothing to rebuild
	}
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	upTo, err := c.delivered(ctx, stream)
	if err != nil || upTo == 0 {
		return 0, err
	}
	n, last, err := c.replay(ctx, stream, since, upTo, sink)
	if err == nil && last > 0 {
		// Skip what was replayed, not merely what was delivered: a message
		// the replay did not reach must still be applied when it comes.
		c.skipUpTo.Store(last)
	}
	return n, err
}

// replay applies the events of messages stored since `since` with stream
// sequences up to upTo. It returns the number of events applied and the
// stream sequence of the last message replayed.
func (c *Consumer) replay(ctx context.Context, stream jetstream.Stream, since time.Time, upTo uint64, sink Sink) (int, uint64, error) {
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventsSubjects},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("rebuild: %w", err)
	}
	dec := event.NewDecoder(c.cfg.Limits())
	n, last := 0, uint64(0)
	for {
		// Stored messages are there to take: do not wait for more.
		batch, err := oc.FetchNoWait(c.cfg.FetchBatch)
		if err != nil {
			return n, last, fmt.Errorf("rebuild: %w", err)
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil || meta.Sequence.Stream > upTo {
				done = true
				continue
			}
			n += c.replayMessage(dec, msg, sink)
			last = meta.Sequence.Stream
			done = done || last == upTo
		}
		if done || got == 0 || ctx.Err() != nil {
			return n, last, ctx.Err()
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
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	return info.Delivered.Stream, nil
}

func (c *Consumer) replayMessage(dec *event.Decoder, msg jetstream.Msg, sink Sink) int {
	meta, _ := msg.Metadata()
	// Judge the future-skew limit against when the message was stored, as
	// ingest did then, so replay accepts exactly what ingest accepted.
	valid, _ := dec.DecodeMessage(msg.Data(), subjectService(msg.Subject()), meta.Timestamp, sink.Process, func(*event.RejectError, []byte) {})
	return valid
}
