package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

// Rebuild replays events stored since `since` into sink, up to the last
// message the durable consumer acknowledged, so that detection windows hold
// what they held before a restart; newer messages come through Run as usual.
// Nothing is counted in metrics (they were counted when first applied) and
// rejected lines are skipped (they were dead-lettered then). It returns the
// number of events replayed.
func (c *Consumer) Rebuild(ctx context.Context, since time.Time, sink Sink) (int, error) {
	stream, err := c.js.Stream(ctx, EventsStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // first start: nothing to rebuild
	}
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	upTo, err := c.ackFloor(ctx, stream)
	if err != nil || upTo == 0 {
		return 0, err
	}
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventsSubjects},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	dec := event.NewDecoder(c.cfg.Limits())
	n := 0
	for {
		batch, err := oc.Fetch(c.cfg.FetchBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return n, fmt.Errorf("rebuild: %w", err)
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
			done = done || meta.Sequence.Stream == upTo
		}
		if done || got == 0 || ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// ackFloor returns the stream sequence below which the durable consumer has
// acknowledged everything, or 0 when it does not exist yet.
func (c *Consumer) ackFloor(ctx context.Context, stream jetstream.Stream) (uint64, error) {
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
	return info.AckFloor.Stream, nil
}

func (c *Consumer) replayMessage(dec *event.Decoder, msg jetstream.Msg, sink Sink) int {
	service := strings.TrimPrefix(msg.Subject(), SubjectPrefix)
	if i := strings.LastIndexByte(service, '.'); i >= 0 {
		service = service[i+1:]
	}
	meta, _ := msg.Metadata()
	// Judge the future-skew limit against when the message was stored, as
	// ingest did then, so replay accepts exactly what ingest accepted.
	valid, _ := dec.DecodeMessage(msg.Data(), service, meta.Timestamp, sink.Process, func(*event.RejectError, []byte) {})
	return valid
}
