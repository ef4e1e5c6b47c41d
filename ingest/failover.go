package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Failover lets several Vigil instances share the durable consumer with one
// of them active at a time: the consumer gets a priority group under
// JetStream's pinned_client policy, so the server delivers to one pulling
// instance (the pinned one) and moves the pin to another that is waiting
// when the pinned one has not pulled for After. Each message delivered
// under a pin carries its id (header Nats-Pin-Id): a consumer that sees a
// new one has just been pinned, and one whose pulls are refused with
// ErrPinIDMismatch has lost its pin.
type Failover struct {
	// After is the pinned TTL: how long the active instance may stop
	// pulling before another takes over.
	After time.Duration
	// PullExpiry is how long one pull waits; well under After, since only
	// a pull refreshes the pin.
	PullExpiry time.Duration
	// Promote runs when this consumer has just been pinned, before the
	// first message delivered under the pin is decoded, with intake
	// paused: the instance catches up with what the previous active
	// instance was delivered (CatchUp, then TakeReplayed) and starts
	// announcing. On error the pin is given up and the message handed
	// back, so that another instance takes over.
	Promote func(ctx context.Context) error
	// Demote runs when the pin moved to another instance, with intake
	// paused and everything received under the pin applied; the instance
	// goes back to following the stream (from Position) without
	// announcing.
	Demote func()
	// WakeSubject is where Wake publishes: a subject of the events stream
	// this instance may publish on (the daemon uses its own service's,
	// vigil.events.vigil-admin, which the shipped NATS permissions allow).
	WakeSubject string
}

// PriorityGroup is the events consumer's priority group in failover mode.
const PriorityGroup = "vigil"

// pinHeader carries the pin id on the messages JetStream delivers to the
// pinned client of a priority group.
const pinHeader = "Nats-Pin-Id"

// failoverState is the consumer's side of a failover: the pin it holds,
// and the one it lost last, whose messages still in the client's buffer
// are left to the new active instance.
type failoverState struct {
	mu   sync.Mutex
	pin  string // "" while not pinned
	lost string
	ctx  context.Context
}

func (f *failoverState) held() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pin
}

// checkPin runs under batchMu for every message in failover mode. A message
// of a new pin promotes this instance first (demoting it from the pin it
// held, if any: the server may pin this instance again under a new id
// before the refusal of its old one is handled). It reports false when the
// message must not be decoded: it came under a pin this instance lost, or
// the promotion failed; either way it is handed back, for the member
// pinned now.
func (c *Consumer) checkPin(msg jetstream.Msg) bool {
	pin := ""
	if h := msg.Headers(); h != nil {
		pin = h.Get(pinHeader)
	}
	f := &c.fo
	f.mu.Lock()
	current, lost, ctx := f.pin, f.lost, f.ctx
	f.mu.Unlock()
	switch {
	case pin == "" || pin == current:
		return true
	case pin == lost:
		_ = msg.Nak()
		return false
	}
	if current != "" {
		c.dropPinLocked(current)
	}
	// Everything decoded so far belongs to the previous pin: apply it
	// before the promotion reads what has been applied.
	c.sendLocked()
	c.inflight.Wait()
	// The pin is this instance's from now: the promotion's announcements
	// pass the fence.
	f.mu.Lock()
	f.pin = pin
	f.mu.Unlock()
	if err := c.failover.Promote(ctx); err != nil {
		f.mu.Lock()
		f.pin, f.lost = "", pin
		f.mu.Unlock()
		c.log.Warn("pinned on the events consumer but could not take over; giving the pin up for another instance", "err", err)
		_ = msg.NakWithDelay(time.Second)
		c.unpin(ctx)
		return false
	}
	return true
}

// unpin asks the server to move the pin to another waiting instance.
func (c *Consumer) unpin(ctx context.Context) {
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := c.js.Stream(uctx, EventsStream)
	if err == nil {
		err = stream.UnpinConsumer(uctx, c.cfg.Consumer, PriorityGroup)
	}
	if err != nil {
		c.log.Warn("could not give up the pin of the events consumer; it moves on after cluster.failover_after", "err", err)
	}
}

// lostPin runs when this instance stopped holding pin: a pull under it
// was refused with ErrPinIDMismatch, or consuming ended. Unless the
// instance holds another pin by now, it applies what was received under pin
// and demotes the instance.
func (c *Consumer) lostPin(pin string) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	c.dropPinLocked(pin)
}

// dropPinLocked is lostPin with batchMu held.
func (c *Consumer) dropPinLocked(pin string) {
	f := &c.fo
	f.mu.Lock()
	if pin == "" || f.pin != pin {
		f.mu.Unlock()
		return
	}
	f.pin, f.lost = "", pin
	f.mu.Unlock()
	c.sendLocked()
	c.inflight.Wait()
	c.failover.Demote()
}

// HoldsPin asks the server whether this consumer still holds the pin of
// the events consumer's priority group: the fence a member checks before it
// announces an alert, since a member frozen past After (a long pause, a
// SIGSTOP) may still be working through messages delivered before it lost
// the pin. Without failover it is always true.
func (c *Consumer) HoldsPin(ctx context.Context) (bool, error) {
	if c.failover == nil {
		return true, nil
	}
	pin := c.fo.held()
	if pin == "" {
		return false, nil
	}
	pinned, _, err := c.pinned(ctx)
	if errors.Is(err, errNotBound) {
		return false, nil
	}
	return err == nil && pinned == pin, err
}

// errNotBound means the consumer has not bound to the events consumer yet.
var errNotBound = errors.New("not bound to the events consumer yet")

// pinned asks the server which client it has pinned in the events
// consumer's priority group ("" when none), and how many messages it has
// not delivered yet.
func (c *Consumer) pinned(ctx context.Context) (string, uint64, error) {
	c.consMu.Lock()
	cons := c.cons
	c.consMu.Unlock()
	if cons == nil {
		return "", 0, errNotBound
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("read the events consumer: %w", err)
	}
	for _, g := range info.PriorityGroups {
		if g.Group == PriorityGroup {
			return g.PinnedClientID, info.NumPending, nil
		}
	}
	return "", info.NumPending, nil
}

// Wake gets a member pinned when none is. JetStream pins a client of the
// priority group only when it delivers it a message, so on a quiet stream
// no member is active before the first event, nor after the active one
// crashed or froze (once its pin ran out after After): no alert resolves
// and no delivery goes out until an event comes. When the server has
// pinned nobody and holds nothing undelivered (which it would deliver,
// and so pin someone, on its own), Wake publishes an empty message (no
// events) on WakeSubject; its delivery pins one of the members waiting,
// which takes over as for any message. Only the server's answer counts: a
// member that resumes from a freeze still believes it holds the pin it
// lost. It reports whether it published.
func (c *Consumer) Wake(ctx context.Context) (bool, error) {
	if c.failover == nil {
		return false, nil
	}
	pinned, pending, err := c.pinned(ctx)
	switch {
	case errors.Is(err, errNotBound):
		return false, nil
	case err != nil:
		return false, err
	case pinned != "" || pending > 0:
		return false, nil
	}
	m := &nats.Msg{Subject: c.failover.WakeSubject, Header: nats.Header{}}
	m.Header.Set(WakeHeader, "1")
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		return false, fmt.Errorf("publish the wake-up message on %s: %w", c.failover.WakeSubject, err)
	}
	return true, nil
}

// WakeHeader marks the empty message Wake publishes.
const WakeHeader = "Vigil-Wake"

// isWake reports whether msg is a wake-up message: empty, marked, and on
// WakeSubject, which only Vigil may publish on (a service that marks its
// own messages does not get its events skipped).
func (c *Consumer) isWake(msg jetstream.Msg) bool {
	if c.failover == nil || len(msg.Data()) != 0 || msg.Subject() != c.failover.WakeSubject {
		return false
	}
	h := msg.Headers()
	return h != nil && h.Get(WakeHeader) != ""
}

// Position extends r, how far a replay into the consumer's sink went, with
// what the consumer applied live since: the last message applied and the
// duplicate window's ids, for an instance that goes on from there with
// CatchUp.
func (c *Consumer) Position(r Replayed) Replayed {
	if made := c.streamMade.Load(); made != 0 {
		r = r.of(time.Unix(0, made))
	}
	r.Last = max(r.Last, c.lastApplied.Load())
	r.ids = c.dedup.Load()
	return r
}

// TakeReplayed is SkipReplayed for an instance taking over: the replay's
// ids of the duplicate window replace the consumer's, which are older.
func (c *Consumer) TakeReplayed(r Replayed) {
	c.applied.addRange(r.First, r.Last)
	if r.ids != nil {
		c.dedup.Store(r.ids)
	}
}

// isPinMismatch reports whether err says another client holds the pin.
func isPinMismatch(err error) bool { return errors.Is(err, jetstream.ErrPinIDMismatch) }

// noteApplied raises lastApplied to the highest of seqs: a chunk may end
// with messages delivered again that are older than the rest.
func (c *Consumer) noteApplied(seqs []uint64) {
	top := uint64(0)
	for _, s := range seqs {
		top = max(top, s)
	}
	for {
		cur := c.lastApplied.Load()
		if top <= cur || c.lastApplied.CompareAndSwap(cur, top) {
			return
		}
	}
}

// Delivered is the stream sequence of the last message the durable
// consumer delivered (to any instance), as of the last poll of its state.
func (c *Consumer) Delivered() uint64 { return c.lastDelivered.Load() }
