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
// applies decoded events in order, and another settles each chunk's
// messages once its events are applied. After a failure nothing more is
// settled, and no chunk is applied that the applier takes after it
// noticed; consume stops and the messages not settled are delivered again
// (those applied are marked, so that they are not applied twice). What
// applying and settling do is the stages' business.
type applier struct {
	work    stages
	in      chan *chunk
	applied chan *chunk // to the settler
	done    chan struct{}
	failed  chan struct{} // closed when err is set
	broken  atomic.Bool   // failed, for the applier to check per chunk
	err     error         // set by the settler before failed is closed
}

// stages are the work the applier orders: the Consumer's.
type stages interface {
	// apply passes a chunk's events to the sink.
	apply(ch *chunk)
	// passed is called once a chunk left the applying stage, applied or
	// skipped.
	passed(ch *chunk)
	// settle stores a chunk's dead letters, acknowledges its messages and
	// counts its events.
	settle(ch *chunk) error
	// handBack returns a chunk's messages to JetStream unsettled; applied
	// says its events were applied, so that they are not applied again.
	handBack(ch *chunk, applied bool)
	// recycle takes back a chunk the applier is done with.
	recycle(ch *chunk)
}

func newApplier(work stages) *applier {
	a := &applier{
		work: work, in: make(chan *chunk, chunkQueue), applied: make(chan *chunk, settleQueue),
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
			a.work.apply(ch)
		}
		a.work.passed(ch)
		a.applied <- ch
	}
}

func (a *applier) runSettle() {
	defer close(a.done)
	for ch := range a.applied {
		a.settleChunk(ch)
		a.work.recycle(ch)
	}
}

// close waits until every chunk sent was handled and returns the failure,
// if any.
func (a *applier) close() error {
	close(a.in)
	<-a.done
	return a.err
}

// settleChunk settles an applied chunk, or hands its messages back once
// something failed.
func (a *applier) settleChunk(ch *chunk) {
	if ch.skip {
		a.work.handBack(ch, false) // never applied: JetStream delivers them again
		return
	}
	err := a.err
	if err == nil {
		err = a.work.settle(ch)
	}
	if err == nil {
		return
	}
	// Every event of the chunk was applied, none counted: when JetStream
	// delivers it again, dead-letter its rejected lines and count it, but
	// do not apply it twice.
	a.work.handBack(ch, true)
	if a.err == nil {
		a.err = err
		a.broken.Store(true)
		close(a.failed)
	}
}

// apply passes a chunk's events to the Sink; settle counts them.
func (c *Consumer) apply(ch *chunk) {
	ch.at = c.clock.Now()
	if p := c.sink.Load(); p != nil {
		sink := *p
		for i := range ch.events {
			sink.Process(&ch.events[i])
		}
	}
	c.noteApplied(ch.seqs)
	c.progress.apply(len(ch.msgs))
}

// passed ends a chunk's time in flight (see Paused).
func (c *Consumer) passed(*chunk) { c.inflight.Done() }

// settle waits until JetStream stored the chunk's dead letters, then
// acknowledges its messages and counts their events and rejected lines:
// counted when acknowledged, an event is counted once even when a crash
// makes JetStream deliver its message again.
func (c *Consumer) settle(ch *chunk) error {
	if c.beforeSettle != nil {
		c.beforeSettle(ch.seqs)
	}
	if ch.deadErr != nil {
		return ch.deadErr
	}
	if err := c.waitDeadLetters(ch.dead); err != nil {
		return err
	}
	if err := c.ack(ch.msgs); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	for _, seq := range ch.seqs {
		c.settled.add(seq)
	}
	c.pipelined.remove(ch.seqs)
	c.count(ch)
	return nil
}

// handBack naks a chunk's messages, so that JetStream delivers them again;
// applied marks them so that decodeMessage counts but does not apply them.
func (c *Consumer) handBack(ch *chunk, applied bool) {
	if applied {
		for _, seq := range ch.seqs {
			c.applied.add(seq)
		}
	}
	c.pipelined.remove(ch.seqs)
	for _, msg := range ch.msgs {
		_ = msg.Nak()
	}
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

// ack acknowledges each message of a chunk whose events were applied.
func (c *Consumer) ack(msgs []jetstream.Msg) error {
	for _, msg := range msgs {
		if err := msg.Ack(); err != nil {
			return err
		}
	}
	return nil
}
