package ingest

import (
	"sync"
	"time"
)

// reconnectGrace is how long after Vigil (re)connects to NATS the server's
// "nothing left" is not believed: publishers that held events while Vigil
// or NATS was away reconnect too (nats.go waits 2s between attempts by
// default) and their events must not count as late.
const reconnectGrace = 5 * time.Second

// progress tracks whether the consumer has applied everything the server
// holds for it, for CaughtUp. Only the server can say so: a delivery says
// how many messages wait behind it, but not those a publisher still holds
// or those lost on a dropped connection.
type progress struct {
	mu       sync.Mutex
	grace    time.Duration
	received uint64
	applied  uint64
	since    time.Time // the session started or the connection was lost
	idle     bool      // the server last reported nothing left, and nothing came since
	last     time.Time // a message last came, or the session started
}

// reset starts a session, not caught up.
func (p *progress) reset(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.received, p.applied, p.since, p.idle, p.last = 0, 0, now, false, now
}

func (p *progress) receive(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.received++
	p.idle, p.last = false, now
}

// stallAfter is how long a consumer that has applied everything it
// received may go without a message while the server holds messages for it
// and none is awaiting acknowledgement before it binds again.
const stallAfter = 10 * time.Second

// stalled reports whether delivery has stopped: the server reports pending
// messages and none awaiting acknowledgement (so nothing holds delivery
// back), everything received was applied (the pipeline is not busy), and
// nothing came for stallAfter. A pull subscription can end up so after its
// server goes away; binding again sends fresh pull requests.
func (p *progress) stalled(now time.Time, pending, ackPending uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pending > 0 && ackPending == 0 && p.applied == p.received && now.Sub(p.last) >= stallAfter
}

func (p *progress) apply(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied += uint64(n)
}

// interrupt records that the connection to NATS was lost, or came back.
func (p *progress) interrupt(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since, p.idle = now, false
}

// serverIdle records that the server reported nothing undelivered and
// nothing unacknowledged. It counts once every message received was
// applied and the grace after (re)connecting has passed.
func (p *progress) serverIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applied == p.received && now.Sub(p.since) >= p.grace {
		p.idle = true
	}
}

func (p *progress) caughtUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle && p.applied == p.received
}
