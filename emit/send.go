package emit

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pump sends ready messages while NATS is connected, no backoff is due and
// fewer than maxInflight messages wait for their ack.
func (p *publisher) pump() {
	if !connected(p.nc) {
		if p.outstanding.Load() > 0 || len(p.in) > 0 {
			p.retry.Reset(disconnectedPoll)
		}
		return
	}
	for {
		p.mu.Lock()
		if len(p.ready) == 0 || len(p.sent) >= p.cfg.maxInflight {
			p.mu.Unlock()
			return
		}
		if wait := time.Until(p.notBefore); wait > 0 {
			p.mu.Unlock()
			p.retry.Reset(wait)
			return
		}
		f := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		// Registered before sending: the ack may arrive before
		// PublishMsgAsync returns.
		p.sent[f.msg] = f
		p.mu.Unlock()
		if _, err := p.js.PublishMsgAsync(f.msg); err != nil {
			// No callback follows an attempt that failed here.
			p.mu.Lock()
			delete(p.sent, f.msg)
			first := p.failLocked(f, err)
			p.mu.Unlock()
			p.logFailure(first, err)
			return
		}
	}
}

// onAck is JetStream's ack callback: the message is stored (a retry of a
// message stored before too; Vigil drops it by its Nats-Msg-Id).
func (p *publisher) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	p.mu.Lock()
	f, ok := p.sent[m]
	if !ok || p.finished {
		p.mu.Unlock()
		return
	}
	delete(p.sent, m)
	p.outstanding.Add(-1)
	p.c.published.Add(uint64(f.events))
	p.c.messages.Add(1)
	p.recycleLocked(m.Data)
	recovered := p.failing
	p.failing, p.backoff, p.notBefore = false, 0, time.Time{}
	p.mu.Unlock()
	if recovered {
		p.log.Info("vigil event publishing recovered")
	}
	p.signal()
}

// onErr is JetStream's async error callback (ack timeout, disconnection, no
// stream, refusal). It may run with JetStream's lock held, so it only
// updates our state and wakes the loop.
func (p *publisher) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	p.mu.Lock()
	f, ok := p.sent[m]
	if !ok || p.finished {
		p.mu.Unlock()
		return
	}
	delete(p.sent, m)
	first := p.failLocked(f, err)
	p.mu.Unlock()
	p.logFailure(first, err)
	p.signal()
}

// failLocked records a failed attempt of f: it is queued to be sent again
// after a backoff, or dropped when JetStream refused it for good. It
// reports whether this failure starts a failing period. p.mu is held.
func (p *publisher) failLocked(f *flight, err error) bool {
	kind, retry := classify(err)
	p.c.pubErrors[kind].Add(1)
	if !retry {
		p.c.drop(dropRejected, f.events)
		p.outstanding.Add(-1)
		p.recycleLocked(f.msg.Data)
		return false
	}
	// Back in its place, before anything built after it: events reach
	// Vigil in the order they were emitted, so that an outage does not make
	// the events it held back arrive after newer ones (and count as late).
	i, _ := slices.BinarySearchFunc(p.ready, f.seq, func(g *flight, seq uint64) int { return cmp.Compare(g.seq, seq) })
	p.ready = slices.Insert(p.ready, i, f)
	p.backoff = min(max(2*p.backoff, p.cfg.minBackoff), p.cfg.maxBackoff)
	p.notBefore = time.Now().Add(p.backoff)
	first := !p.failing
	p.failing = true
	return first
}

func (p *publisher) logFailure(first bool, err error) {
	if first {
		p.log.Warn("vigil event publishing failing; keeping events and retrying", "err", err)
	}
}

// resetBackoff lets the publisher send at once, after a reconnection.
func (p *publisher) resetBackoff() {
	p.mu.Lock()
	p.backoff, p.notBefore = 0, time.Time{}
	p.mu.Unlock()
}

// shutdown publishes everything left, until ctx is done or the connection
// is closed, then counts what is left as dropped. Emit no longer adds to
// the buffer when it runs.
func (p *publisher) shutdown(ctx context.Context) (dropped int) {
	defer func() { dropped = p.finish() }()
	p.maxMsg = p.maxMessageBytes()
	p.drain()
	p.flushAll()
	for p.outstanding.Load() > 0 && !p.nc.IsClosed() {
		p.pump()
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-p.retry.C:
		case s := <-p.status:
			if s == nats.CONNECTED {
				p.resetBackoff()
			}
		}
	}
	return
}

// drain moves every buffered event into batches.
func (p *publisher) drain() {
	for {
		select {
		case ev := <-p.in:
			p.take(&ev)
		default:
			return
		}
	}
}

// finish stops the publisher and counts the events of unacknowledged
// messages as dropped; acks that arrive later are ignored.
func (p *publisher) finish() int {
	p.linger.Stop()
	p.retry.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished = true
	n := 0
	for _, f := range p.ready {
		n += f.events
	}
	for _, f := range p.sent {
		n += f.events
	}
	p.ready, p.sent = nil, nil
	p.outstanding.Store(0)
	p.c.drop(dropClosed, n)
	return n
}
