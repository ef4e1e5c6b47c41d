package ingest

import (
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// settleQueue is how many applied chunks may wait for their dead letters
// to be stored. While one chunk waits, the next ones are applied, so a
// flood of rejected events costs detection nothing but the decoding; the
// dead letters' publishes (bounded by the client's async limit) and the
// consumer's max_ack_pending bound what waits.
const settleQueue = 8

// applier is the second and third stage of the pipeline: one goroutine
// applies decoded events to the Sink in order, and another settles each
// chunk's messages (dead letters stored, messages acknowledged) once its
// events are applied. After a failure nothing more is settled, and no
// chunk is applied that the applier takes after it noticed; consume stops
// and the messages not settled are delivered again (those applied are
// marked, so that they are not applied twice).
type applier struct {
	c       *Consumer
	in      chan *chunk
	applied chan *chunk // to the settler
	done    chan struct{}
	failed  chan struct{} // closed when err is set
	broken  atomic.Bool   // failed, for the applier to check per chunk
	err     error         // set by the settler before failed is closed
}

func newApplier(c *Consumer) *applier {
	a := &applier{
		c: c, in: make(chan *chunk, chunkQueue), applied: make(chan *chunk, settleQueue),
		done: make(chan struct{}), failed: make(chan struct{}),
	}
	go a.run()
	go a.runSettle()
	return a
}

func (a *applier) run() {
	defer close(a.applied)
	for ch := range a.in {
		ch.skip = a.broken.Load()
		if !ch.skip {
			a.apply(ch)
		}
		a.c.inflight.Done()
		a.applied <- ch
	}
}

func (a *applier) runSettle() {
	defer close(a.done)
	for ch := range a.applied {
		a.settleChunk(ch)
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

// apply passes a chunk's events to the Sink; settle counts them.
func (a *applier) apply(ch *chunk) {
	ch.at = a.c.clock.Now()
	if p := a.c.sink.Load(); p != nil {
		sink := *p
		for i := range ch.events {
			sink.Process(&ch.events[i])
		}
	}
	a.c.noteApplied(ch.seqs)
	a.c.progress.apply(len(ch.msgs))
}

// settleChunk settles an applied chunk, or hands its messages back once
// something failed.
func (a *applier) settleChunk(ch *chunk) {
	if a.c.beforeSettle != nil {
		a.c.beforeSettle(ch.seqs)
	}
	if ch.skip {
		handBack(ch.msgs) // never applied: JetStream delivers them again
		return
	}
	err := a.err
	if err == nil {
		err = a.settle(ch)
	}
	if err == nil {
		return
	}
	// Every event of the chunk was applied, none counted: when JetStream
	// delivers it again, dead-letter its rejected lines and count it, but
	// do not apply it twice.
	for _, seq := range ch.seqs {
		a.c.applied.add(seq)
	}
	handBack(ch.msgs)
	if a.err == nil {
		a.err = err
		a.broken.Store(true)
		close(a.failed)
	}
}

// settle waits until JetStream stored the chunk's dead letters, then
// acknowledges its messages and counts their events and rejected lines:
// counted when acknowledged, an event is counted once even when a crash
// makes JetStream deliver its message again.
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
	a.c.count(ch)
	return nil
}

// count counts the events and rejected lines of an acknowledged chunk.
func (c *Consumer) count(ch *chunk) {
	for i := range ch.events {
		c.metrics.Observe(&ch.events[i], ch.at)
	}
	for i := range ch.tally {
		c.metrics.Observe(&ch.tally[i], ch.at)
	}
	for r, n := range ch.rejected {
		c.metrics.Rejected(r, n)
	}
	c.metrics.Batch()
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
