package ingest

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// applier is the second stage of the pipeline: it applies decoded events
// to the Sink in order and settles each chunk's messages once their events
// are applied. After a failure it settles nothing more; consume stops and
// the messages not settled are delivered again.
type applier struct {
	c      *Consumer
	in     chan *chunk
	done   chan struct{}
	failed chan struct{} // closed when err is set
	err    error
}

func newApplier(c *Consumer) *applier {
	a := &applier{c: c, in: make(chan *chunk, chunkQueue), done: make(chan struct{}), failed: make(chan struct{})}
	go a.run()
	return a
}

func (a *applier) run() {
	defer close(a.done)
	for ch := range a.in {
		a.apply(ch)
		a.c.inflight.Done()
		a.c.recycle(ch)
	}
}

// close waits until every chunk sent was handled and returns the failure,
// if any.
func (a *applier) close() error {
	close(a.in)
	<-a.done
	return a.err
}

func (a *applier) apply(ch *chunk) {
	if a.err != nil {
		handBack(ch.msgs)
		return
	}
	var sink Sink
	if p := a.c.sink.Load(); p != nil {
		sink = *p
	}
	now := a.c.now()
	for i := range ch.events {
		a.c.metrics.Observe(&ch.events[i], now)
		if sink != nil {
			sink.Process(&ch.events[i])
		}
	}
	a.c.progress.apply(len(ch.msgs))
	if err := a.settle(ch); err != nil {
		// Every event of the chunk was applied: when JetStream delivers
		// it again, count and dead-letter it, but do not apply it twice.
		for _, seq := range ch.seqs {
			a.c.replayed.add(seq)
		}
		handBack(ch.msgs)
		a.err = err
		close(a.failed)
	}
}

// settle waits until JetStream stored the chunk's dead letters, then
// acknowledges its messages.
func (a *applier) settle(ch *chunk) error {
	if ch.deadErr != nil {
		return ch.deadErr
	}
	if err := a.c.waitDeadLetters(ch.dead); err != nil {
		return err
	}
	if err := a.c.ack(ch.msgs); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	for _, seq := range ch.seqs {
		a.c.settled.add(seq)
	}
	a.c.metrics.Batch()
	return nil
}

func handBack(msgs []jetstream.Msg) {
	for _, msg := range msgs {
		_ = msg.Nak()
	}
}

// ack acknowledges each message of a chunk whose events were applied.
func (c *Consumer) ack(msgs []jetstream.Msg) error {
	for _, msg := range msgs {
		if err := msg.Ack(); err != nil {
			return err
		}
	}
	return nil
}
