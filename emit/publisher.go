package emit

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
)

// disconnectedPoll is how often the publisher looks at a connection that is
// down, in case a status change notification was missed.
const disconnectedPoll = time.Second

// flight is one built message, from its first publish attempt until it is
// acknowledged or dropped.
type flight struct {
	msg    *nats.Msg
	events int
	seq    uint64 // order of creation: messages are sent, and sent again, in it
}

// publisher is the Emitter's background half. Fields above mu belong to the
// run goroutine; the rest are shared with the JetStream ack and error
// callbacks.
type publisher struct {
	cfg       *config
	nc        *nats.Conn
	js        jetstream.JetStream
	in        chan event.Event
	c         *counters
	batchSize prometheus.Histogram
	log       *slog.Logger
	status    chan nats.Status

	open    map[string]*batch // open batch per service
	scratch []byte
	maxMsg  int // message size limit, refreshed every loop iteration
	linger  *time.Timer
	lingerC <-chan time.Time // nil while no batch is lingering
	retry   *time.Timer

	outstanding atomic.Int64  // len(ready) + len(sent)
	wake        chan struct{} // an ack or a failure
	full        chan struct{} // Emit saw enough events to fill a lingering batch
	fullAt      atomic.Int64  // buffered events that fill it; MaxInt64 when none lingers

	mu        sync.Mutex
	ready     []*flight             // built, waiting to be sent (new or again), in seq order
	nextSeq   uint64                // seq of the next flight
	sent      map[*nats.Msg]*flight // sent, waiting for the ack
	backoff   time.Duration         // current retry delay; 0 while healthy
	notBefore time.Time             // no sending before this
	failing   bool                  // the last attempt failed
	finished  bool                  // shut down: callbacks are ignored
	free      [][]byte              // data buffers to reuse
}

func newPublisher(cfg *config, nc *nats.Conn, c *counters, batchSize prometheus.Histogram) (*publisher, error) {
	p := &publisher{
		cfg: cfg, nc: nc, c: c, batchSize: batchSize, log: cfg.logger,
		in:     make(chan event.Event, cfg.bufferSize),
		open:   map[string]*batch{},
		linger: time.NewTimer(time.Hour),
		retry:  time.NewTimer(time.Hour),
		wake:   make(chan struct{}, 1),
		full:   make(chan struct{}, 1),
		sent:   map[*nats.Msg]*flight{},
	}
	p.linger.Stop()
	p.retry.Stop()
	p.fullAt.Store(math.MaxInt64)
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr),
		jetstream.WithPublishAsyncTimeout(cfg.ackTimeout),
		// Our own cap (maxInflight) is never above this one, so
		// PublishMsgAsync never stalls.
		jetstream.WithPublishAsyncMaxPending(cfg.maxInflight+1))
	if err != nil {
		return nil, err
	}
	p.js = js
	p.status = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	return p, nil
}

// run is the publisher's loop. It returns after stop delivers the Close
// context and shutdown has flushed or given up, with the number of events
// dropped at shutdown.
func (p *publisher) run(stop <-chan context.Context) int {
	for {
		p.maxMsg = p.maxMessageBytes()
		in, full := p.in, p.full
		if !p.canTake() {
			in, full = nil, nil // the buffer holds further events
		} else if p.lingerC != nil {
			// While a batch lingers, requests add to the buffer without
			// waking this goroutine, until a batch's worth is there.
			in = nil
		}
		select {
		case ev := <-in:
			p.take(&ev)
			p.takeMore(4 * p.cfg.maxBatch)
		case <-p.lingerC:
			p.lingerC = nil
			p.takeMore(cap(p.in))
			p.flushAll()
		case <-full:
			p.takeMore(cap(p.in)) // full batches go now; the rest lingers on
		case <-p.wake:
		case <-p.retry.C:
		case s := <-p.status:
			if s == nats.CONNECTED {
				p.resetBackoff()
			}
		case ctx := <-stop:
			return p.shutdown(ctx)
		}
		if p.cfg.linger == 0 {
			p.flushAll() // no waiting for more: what was taken goes now
		}
		p.setFullAt()
		p.pump()
	}
}

// setFullAt tells Emit how many buffered events complete the fullest
// lingering batch, so that a full batch does not wait for the linger.
func (p *publisher) setFullAt() {
	if p.lingerC == nil {
		p.fullAt.Store(math.MaxInt64)
		return
	}
	most := 0
	for _, b := range p.open {
		most = max(most, b.n)
	}
	p.fullAt.Store(int64(max(1, p.cfg.maxBatch-most)))
}

func connected(nc *nats.Conn) bool { return nc.Status() == nats.CONNECTED }

// canTake reports whether the loop may take events from the buffer: NATS is
// connected and fewer than maxInflight messages are outstanding.
func (p *publisher) canTake() bool {
	return p.outstanding.Load() < int64(p.cfg.maxInflight) && connected(p.nc)
}

// takeMore takes up to n events that are already in the buffer, so that one
// wake-up serves many events; it stops early at the in-flight limit.
func (p *publisher) takeMore(n int) {
	for range n {
		select {
		case ev := <-p.in:
			p.take(&ev)
		default:
			return
		}
		if p.outstanding.Load() >= int64(p.cfg.maxInflight) {
			return
		}
	}
}

// take normalizes and encodes one event and adds it to its service's batch.
func (p *publisher) take(ev *event.Event) {
	if !normalize(ev, p.cfg.service, p.cfg.now) {
		p.c.drop(dropInvalid, 1)
		return
	}
	p.scratch = ev.AppendJSON(p.scratch[:0])
	if len(p.scratch) > p.cfg.maxEventBytes {
		p.c.drop(dropTooLarge, 1)
		return
	}
	b := p.open[ev.Service]
	if b != nil && !b.fits(len(p.scratch), p.maxMsg) {
		p.flush(b)
		b = nil
	}
	if b == nil {
		b = &batch{service: ev.Service, subject: p.cfg.subjectPrefix + "." + ev.Service, data: p.buffer()}
		p.open[ev.Service] = b
	}
	b.add(ev.RequestID, p.scratch)
	if b.n >= p.cfg.maxBatch {
		p.flush(b)
	} else if p.lingerC == nil && p.cfg.linger > 0 {
		p.linger.Reset(p.cfg.linger)
		p.lingerC = p.linger.C
	}
}

// maxMessageBytes keeps messages below the server's max_payload, leaving room
// for the headers.
func (p *publisher) maxMessageBytes() int {
	limit := p.cfg.maxBatchBytes
	if mp := int(p.nc.MaxPayload()); mp > 0 {
		limit = min(limit, mp-1024)
	}
	return limit
}

// flush turns batch b into a message waiting to be sent.
func (p *publisher) flush(b *batch) {
	delete(p.open, b.service)
	p.batchSize.Observe(float64(b.n))
	f := &flight{msg: b.message(), events: b.n}
	p.mu.Lock()
	f.seq = p.nextSeq
	p.nextSeq++
	p.ready = append(p.ready, f)
	p.outstanding.Add(1)
	p.mu.Unlock()
	if len(p.open) == 0 && p.lingerC != nil {
		p.linger.Stop()
		p.lingerC = nil
	}
}

func (p *publisher) flushAll() {
	for _, b := range p.open {
		p.flush(b)
	}
}

// buffer returns a data buffer for a new batch, reusing one from an
// acknowledged message when there is one.
func (p *publisher) buffer() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		buf := p.free[n-1]
		p.free = p.free[:n-1]
		return buf[:0]
	}
	return make([]byte, 0, min(p.cfg.maxBatchBytes, 4096))
}

// recycleLocked keeps buf for a later batch; p.mu is held.
func (p *publisher) recycleLocked(buf []byte) {
	if len(p.free) < 2*p.cfg.maxInflight && cap(buf) <= 2*p.cfg.maxBatchBytes {
		p.free = append(p.free, buf)
	}
}

func (p *publisher) signal() { notify(p.wake) }

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
