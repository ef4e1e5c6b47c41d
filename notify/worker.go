package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// fetchWait bounds one pull from the consumer, and so how long shutdown
// waits for an idle worker.
const fetchWait = 2 * time.Second

// inbound is a delivery taken from the outbox and not yet acknowledged.
type inbound struct {
	msg jetstream.Msg
	d   delivery
}

// workerDeps are what every worker shares, handed to it when it is built:
// the delivery settings, the metrics, the alert state (its bucket is opened
// by Commit), where dead letters go, the clock and the logger.
type workerDeps struct {
	cfg     Settings
	metrics *metrics
	state   *stateStore
	dead    msgPublisher
	now     func() time.Time
	log     *slog.Logger
	// mayDeliver fences delivery (Options.MayDeliver); nil: always.
	mayDeliver func() bool
}

// fenced reports whether this instance may not deliver now.
func (d workerDeps) fenced() bool { return d.mayDeliver != nil && !d.mayDeliver() }

// fencedWait is how long a fenced worker waits before asking again.
const fencedWait = time.Second

// worker delivers one receiver's queue, in order, one notification at a
// time (or one digest). It runs in one goroutine and owns all its fields
// but disabled, which others read. Its consumer is set by Commit.
type worker struct {
	workerDeps // its log names the receiver
	name       string
	recv       receiver.Receiver
	cons       jetstream.Consumer
	limiter    *rate.Limiter
	breaker    *gobreaker.CircuitBreaker[receiver.Result]
	openUntil  time.Time
	flood      *flood
	disabled   atomic.Bool

	held       []inbound // deliveries waiting for the next digest
	hb         heartbeat // keeps held deliveries alive
	digestDue  time.Time
	lastDigest time.Time
}

func newWorker(d workerDeps, name string, recv receiver.Receiver, lim *rate.Limiter, floodLimit int) *worker {
	d.log = d.log.With("receiver", name)
	w := &worker{
		workerDeps: d, name: name, recv: recv, limiter: lim,
		flood: newFlood(floodLimit, d.cfg.FloodWindow),
		hb:    heartbeat{every: d.cfg.heartbeatEvery()},
	}
	w.breaker = gobreaker.NewCircuitBreaker[receiver.Result](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     d.cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.cfg.BreakerFailures },
		// A permanent failure (a 400 for one payload) says nothing about
		// the receiver's health.
		IsSuccessful:  func(err error) bool { return err == nil || !receiver.Classify(err).Retryable },
		IsExcluded:    func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: w.breakerChanged,
	})
	return w
}

func (w *worker) breakerChanged(_ string, from, to gobreaker.State) {
	open := 0.0
	if to != gobreaker.StateClosed {
		open = 1
	}
	if to == gobreaker.StateOpen {
		w.openUntil = time.Now().Add(w.cfg.BreakerOpenFor)
	}
	w.metrics.breakerOpen.WithLabelValues(w.name).Set(open)
	w.log.Warn("receiver circuit breaker changed state", "from", from.String(), "to", to.String())
}

// run delivers until ctx is done or the receiver is disabled. Deliveries it
// still holds are handed back to JetStream.
func (w *worker) run(ctx context.Context) {
	defer w.release()
	for ctx.Err() == nil && !w.disabled.Load() {
		switch {
		case w.fenced():
			// Another member delivers: leave the outbox to it.
			w.release()
			_ = sleep(ctx, fencedWait, &w.hb)
		case len(w.held) > 0 && !w.now().Before(w.digestDue):
			w.deliverDigest(ctx)
		case len(w.held) >= w.cfg.DigestMax:
			// The digest is full: leave the rest in the stream for the
			// next one rather than send digests faster than one a window.
			_ = sleep(ctx, w.digestDue.Sub(w.now()), &w.hb)
		default:
			if in, ok := w.fetch(ctx); ok {
				w.accept(ctx, in)
			}
		}
	}
}

// release naks held deliveries so they are handed out again at once.
func (w *worker) release() {
	for _, in := range w.held {
		_ = in.msg.Nak()
	}
	w.held, w.hb.msgs = nil, nil
}

// fetch takes the next delivery, waiting at most fetchWait (less while a
// digest is due).
func (w *worker) fetch(ctx context.Context) (inbound, bool) {
	wait := fetchWait
	if len(w.held) > 0 {
		wait = min(wait, w.digestDue.Sub(w.now()), w.hb.every)
	}
	fctx, cancel := context.WithTimeout(ctx, max(wait, 50*time.Millisecond))
	msg, err := w.cons.Next(jetstream.FetchContext(fctx))
	cancel()
	w.hb.maybe()
	if err != nil {
		if ctx.Err() == nil && fctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) {
			w.log.Warn("fetch from outbox failed", "err", err)
			_ = sleep(ctx, time.Second, &w.hb)
		}
		return inbound{}, false
	}
	var d delivery
	if err := json.Unmarshal(msg.Data(), &d); err != nil || d.ID == "" {
		w.log.Error("undecodable delivery in outbox", "err", err)
		w.settle(ctx, []inbound{{msg: msg}}, "", 0, receiver.Permanent(errors.New("undecodable delivery")))
		return inbound{}, false
	}
	return inbound{msg: msg, d: d}, true
}

// accept sends a delivery at once, or holds it for a digest when the
// receiver is past its flood limit.
func (w *worker) accept(ctx context.Context, in inbound) {
	now := w.now()
	w.flood.arrive(now)
	if len(w.held) == 0 && !w.flood.over(now) && !w.backlogAfterDigest(in.msg, now) {
		w.deliverOne(ctx, in)
		return
	}
	if len(w.held) == 0 {
		w.digestDue = w.flood.digestDue(now, w.lastDigest)
		w.log.Warn("receiver past its flood limit; rolling alerts into a digest",
			"flood_limit", w.flood.limit, "flood_window", w.flood.window, "digest_in", w.digestDue.Sub(now))
	}
	w.held = append(w.held, in)
	w.hb.msgs = w.held
	_ = in.msg.InProgress()
}

// backlogAfterDigest reports whether a digest went out within the last
// window and deliveries are still queued behind m: the flood goes on, even
// though the worker, holding back, has not taken it from the queue yet.
func (w *worker) backlogAfterDigest(m jetstream.Msg, now time.Time) bool {
	if w.lastDigest.IsZero() || now.Sub(w.lastDigest) >= w.flood.window {
		return false
	}
	md, err := m.Metadata()
	return err == nil && md.NumPending > 0
}

// deliverOne sends one alert notification, skipping a redelivery of one the
// receiver already accepted, and records what the receiver now shows.
func (w *worker) deliverOne(ctx context.Context, in inbound) {
	d := in.d
	fp := d.Alert.Fingerprint
	rec, err := w.state.receiver(ctx, fp, w.name)
	if err != nil && ctx.Err() == nil {
		w.log.Warn("read receiver state failed; delivering without it", "err", err)
	}
	if rec != nil && rec.Episode != d.Episode {
		rec = nil
	}
	th := w.thread(ctx, d)
	if superseded(rec, th, d) {
		w.ack(ctx, []inbound{in})
		w.metrics.notifications.WithLabelValues(w.name, deliverySkipped).Inc()
		w.log.Info("skipped delivery already superseded at the receiver", "id", d.ID, "transition", string(d.Alert.Transition))
		return
	}
	note := &receiver.Notification{
		ID: d.ID, Receiver: w.name, Kind: receiver.Kind(d.Alert.Transition),
		Alerts: []detect.Alert{d.Alert}, Created: d.Created,
	}
	if rec != nil {
		note.Ref = rec.Ref
	}
	if th != nil {
		th = th.next(d.Alert, d.ID, w.now())
		note.Thread = &th.Thread
	}
	res, attempts, err := w.send(ctx, note, []inbound{in})
	if err == nil {
		w.record(ctx, d, note, res, th)
	}
	w.settle(ctx, []inbound{in}, d.ID, attempts, err)
}

// superseded reports whether the receiver already accepted delivery d (its
// state, or its incident thread's, names d last), or the episode's resolve
// and d is not that resolve.
func superseded(rec *receiverRecord, th *threadRecord, d delivery) bool {
	if th != nil && th.LastID == d.ID {
		return true
	}
	return rec != nil && (rec.LastID == d.ID || (rec.Resolved && d.Alert.Transition != detect.TransitionResolved))
}

// record keeps what the receiver shows after accepting d: the incident
// thread first, then the alert's own state, so that a stop in between
// still finds d accepted (in the thread) when it is delivered again.
func (w *worker) record(ctx context.Context, d delivery, note *receiver.Notification, res receiver.Result, th *threadRecord) {
	ctx = context.WithoutCancel(ctx)
	if th != nil && res.Thread != nil {
		th.Thread = *res.Thread
		if err := w.state.putThread(ctx, w.name, th); err != nil {
			w.log.Warn("write incident thread failed", "incident_id", th.Thread.ID, "err", err)
		}
	}
	nr := &receiverRecord{Episode: d.Episode, Ref: res.Ref, LastID: d.ID,
		Resolved: d.Alert.Transition == detect.TransitionResolved, UpdatedAt: w.now()}
	if nr.Ref.IsZero() {
		nr.Ref = note.Ref
	}
	if err := w.state.putReceiver(ctx, d.Alert.Fingerprint, w.name, nr); err != nil {
		w.log.Warn("write receiver state failed", "err", err)
	}
}

// deliverDigest sends every held delivery as one digest (a lone one as
// itself).
func (w *worker) deliverDigest(ctx context.Context) {
	held := w.held
	w.held, w.hb.msgs = nil, nil
	w.lastDigest = w.now()
	if len(held) == 1 {
		w.deliverOne(ctx, held[0])
		return
	}
	h := sha256.New()
	note := &receiver.Notification{Receiver: w.name, Kind: receiver.KindDigest, Created: held[0].d.Created}
	for _, in := range held {
		h.Write([]byte(in.d.ID))
		note.Alerts = append(note.Alerts, in.d.Alert)
		if in.d.Created.Before(note.Created) {
			note.Created = in.d.Created
		}
	}
	note.ID = "digest-" + hex.EncodeToString(h.Sum(nil)[:16])
	_, attempts, err := w.send(ctx, note, held)
	w.settle(ctx, held, note.ID, attempts, err)
}

// settle acknowledges deliveries after success or after writing them to the
// dead-letter stream, and hands them back when the notifier is stopping.
func (w *worker) settle(ctx context.Context, ins []inbound, id string, attempts int, err error) {
	outcome := deliveryDelivered
	if len(ins) > 1 {
		outcome = deliveryDigested
	}
	switch {
	case err == nil:
		w.ack(ctx, ins)
		w.metrics.notifications.WithLabelValues(w.name, outcome).Add(float64(len(ins)))
		w.log.Debug("notification delivered", "id", id, "alerts", len(ins), "attempts", attempts)
		return
	case errors.Is(err, errStopping):
		for _, in := range ins {
			_ = in.msg.Nak()
		}
		return
	}
	if dlErr := w.deadLetter(ctx, ins, err, attempts); dlErr != nil {
		w.log.Error("write to dead-letter stream failed; delivery kept in the outbox", "id", id, "err", dlErr)
		for _, in := range ins {
			_ = in.msg.NakWithDelay(w.cfg.InitialBackoff)
		}
		return
	}
	w.ack(ctx, ins)
	w.metrics.notifications.WithLabelValues(w.name, deliveryDead).Add(float64(len(ins)))
	w.metrics.dead.WithLabelValues(w.name).Add(float64(len(ins)))
	w.log.Error("notification failed; written to the dead-letter stream", "id", id, "alerts", len(ins), "attempts", attempts, "err", err)
	if receiver.Classify(err).Disable {
		w.disabled.Store(true)
		w.metrics.disabled.WithLabelValues(w.name).Set(1)
		w.log.Error("receiver disabled until the configuration is reloaded; its deliveries stay queued", "err", err)
	}
}

// ack acknowledges deliveries and waits for JetStream to confirm, so an
// acknowledged delivery is not handed out again.
func (w *worker) ack(ctx context.Context, ins []inbound) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, in := range ins {
		if err := in.msg.DoubleAck(actx); err != nil {
			w.log.Warn("acknowledge delivery failed; it may be delivered again", "id", in.d.ID, "err", err)
		}
	}
}
