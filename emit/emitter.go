package emit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/event"
)

// Emitter publishes events to Vigil in the background. Its methods are safe
// for concurrent use.
type Emitter struct {
	cfg   config
	c     *counters
	pub   *publisher
	owned *nats.Conn // closed by Close when Connect opened it
	stop  chan context.Context
	done  chan struct{}

	mu          sync.RWMutex // Emit holds it for reading while it sends
	closed      bool
	lostOnClose int // set before done is closed
}

// New returns an Emitter publishing through nc, and starts its background
// goroutine; Close stops it. nc stays the caller's: Close does not close it.
// Give nc nats.MaxReconnects(-1) so that it never stops reconnecting.
func New(nc *nats.Conn, opts ...Option) (*Emitter, error) {
	if nc == nil {
		return nil, errors.New("emit: nil NATS connection")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	c := &counters{}
	col := newCollector(c, cfg.bufferSize, nil, nil)
	pub, err := newPublisher(&cfg, nc, c, col.batchSize)
	if err != nil {
		return nil, fmt.Errorf("emit: jetstream: %w", err)
	}
	col.buffered = func() int { return len(pub.in) }
	col.inflight = func() int { return int(pub.outstanding.Load()) }
	if cfg.reg != nil {
		if err := cfg.reg.Register(col); err != nil {
			nc.RemoveStatusListener(pub.status)
			return nil, fmt.Errorf("emit: register metrics: %w", err)
		}
	}
	e := &Emitter{cfg: cfg, c: c, pub: pub, stop: make(chan context.Context, 1), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		e.lostOnClose = pub.run(e.stop)
	}()
	return e, nil
}

// Connect connects to NATS at url (a comma-separated list of servers) and
// returns an Emitter that owns the connection. It does not wait for NATS:
// when no server is reachable it returns at once and keeps trying, with
// events buffered meanwhile. WithNATSOptions adds options (credentials,
// TLS); by default the connection reconnects forever.
func Connect(url string, opts ...Option) (*Emitter, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	natsOpts := append([]nats.Option{
		nats.Name("vigil-emit"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
	}, cfg.natsOpts...)
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("emit: connect to NATS: %w", err)
	}
	e, err := New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	e.owned = nc
	return e, nil
}

// Emit hands ev to the publisher and returns at once; it never blocks and
// never fails the caller. It returns false when the event was dropped
// (buffer full, or the Emitter closed); drops are counted by reason.
//
// A zero ev.Time is set to now, an empty ev.Service to WithService's name
// and an empty or invalid ev.RequestID to a generated one. Text fields are
// cleaned to the wire schema's limits in the background. The Emitter owns
// ev.Attrs from now on: do not change the map after Emit.
func (e *Emitter) Emit(ev event.Event) bool {
	e.c.emitted.Add(1)
	if ev.Time.IsZero() {
		ev.Time = e.cfg.now()
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		e.c.drop(dropClosed, 1)
		return false
	}
	select {
	case e.pub.in <- ev:
		e.mu.RUnlock()
		if int64(len(e.pub.in)) >= e.pub.fullAt.Load() {
			notify(e.pub.full) // a lingering batch is full: send it now
		}
		return true
	default:
		e.mu.RUnlock()
		e.c.drop(dropBufferFull, 1)
		return false
	}
}

// Close stops taking events, publishes what is buffered and waits for the
// acks until ctx is done; events still unacknowledged then are counted as
// dropped (reason "closed") and reported in the error. A connection opened
// by Connect is closed. Calling Close again waits for the first call and
// returns nil.
func (e *Emitter) Close(ctx context.Context) error {
	e.mu.Lock()
	already := e.closed
	e.closed = true
	e.mu.Unlock()
	if already {
		<-e.done
		return nil
	}
	e.stop <- ctx
	<-e.done
	e.pub.js.CleanupPublisher()
	e.pub.nc.RemoveStatusListener(e.pub.status)
	if e.owned != nil {
		e.owned.Close()
	}
	if e.lostOnClose > 0 {
		cause := context.Cause(ctx)
		if cause == nil {
			cause = nats.ErrConnectionClosed
		}
		return fmt.Errorf("emit: close: %d events not published: %w", e.lostOnClose, cause)
	}
	return nil
}

// Stats returns the Emitter's counters.
func (e *Emitter) Stats() Stats {
	s := Stats{DroppedBy: make(map[DropReason]uint64, len(dropReasons))}
	// Read the outcomes before Emitted: an event is emitted before it is
	// published or dropped, so Pending never goes negative.
	s.Published = e.c.published.Load()
	for i, r := range dropReasons {
		n := e.c.dropped[i].Load()
		s.DroppedBy[r] = n
		s.Dropped += n
	}
	s.Emitted = e.c.emitted.Load()
	for i := range publishErrors {
		s.PublishErrors += e.c.pubErrors[i].Load()
	}
	s.Messages = e.c.messages.Load()
	s.Buffered = len(e.pub.in)
	s.InFlight = int(e.pub.outstanding.Load())
	return s
}
