package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/vigil-sec/vigil/notify/receiver"
)

// errStopping means the notifier is shutting down before a delivery
// finished; the delivery is handed back to JetStream.
var errStopping = errors.New("notifier stopping")

// GiveUpError is a delivery that failed until its max_elapsed ran out.
type GiveUpError struct {
	Attempts int
	Elapsed  time.Duration
	Err      error
}

func (e *GiveUpError) Error() string {
	return fmt.Sprintf("gave up after %d attempts over %s: %v", e.Attempts, e.Elapsed.Round(time.Millisecond), e.Err)
}

// Unwrap returns the last attempt's error.
func (e *GiveUpError) Unwrap() error { return e.Err }

// send attempts note until it succeeds, fails permanently, or retrying would
// go past max_elapsed counted from when it was queued. Between attempts it
// waits the exponential backoff with jitter, or the receiver's Retry-After,
// or until the circuit breaker half-opens; every wait honours the rate
// limit and keeps the held deliveries alive.
func (w *worker) send(ctx context.Context, note *receiver.Notification, ins []inbound) (receiver.Result, int, error) {
	deadline := note.Created.Add(w.cfg.MaxElapsed)
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     w.cfg.InitialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         w.cfg.MaxBackoff,
	}
	bo.Reset()
	hb := &heartbeat{msgs: ins, every: w.cfg.heartbeatEvery()}
	attempts := 0
	for {
		if err := w.pace(ctx, hb); err != nil {
			return receiver.Result{}, attempts, fmt.Errorf("%w: %w", errStopping, err)
		}
		hb.beat()
		if w.fenced() {
			// This member lost its pin while the delivery waited (a pause,
			// a partition): the active member delivers it.
			return receiver.Result{}, attempts, fmt.Errorf("%w: another member is active", errStopping)
		}
		note.Attempt = attempts + 1
		res, called, err := w.attempt(ctx, note, hb)
		if called {
			attempts++
		}
		if err == nil {
			return res, attempts, nil
		}
		if ctx.Err() != nil {
			return res, attempts, fmt.Errorf("%w: %w", errStopping, err)
		}
		c := receiver.Classify(err)
		if !c.Retryable || c.Disable {
			return res, attempts, err
		}
		wait := bo.NextBackOff()
		switch {
		case !called:
			wait = max(time.Until(w.openUntil), 10*time.Millisecond)
		case c.RetryAfter > 0:
			wait = c.RetryAfter
		}
		if now := w.now(); now.Add(wait).After(deadline) {
			return res, attempts, &GiveUpError{Attempts: attempts, Elapsed: now.Sub(note.Created), Err: err}
		}
		if called {
			w.metrics.notifications.WithLabelValues(w.name, deliveryRetried).Inc()
			w.log.Warn("notification attempt failed; retrying", "id", note.ID, "attempt", attempts, "retry_in", wait, "err", err)
		}
		if err := sleep(ctx, wait, hb); err != nil {
			return res, attempts, fmt.Errorf("%w: %w", errStopping, err)
		}
	}
}

// attempt makes one attempt through the circuit breaker, bounded by
// attempt_timeout, beating hb meanwhile. It is not canceled with ctx: an
// attempt under way when the notifier stops is allowed to finish, so its
// outcome is known. called is false when the open breaker rejected the
// attempt without trying.
func (w *worker) attempt(ctx context.Context, note *receiver.Notification, hb *heartbeat) (receiver.Result, bool, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.AttemptTimeout)
	defer cancel()
	defer hb.during()()
	called := false
	start := time.Now()
	res, err := w.breaker.Execute(func() (receiver.Result, error) {
		called = true
		return w.recv.Send(actx, note)
	})
	if called {
		w.metrics.duration.WithLabelValues(w.name).Observe(time.Since(start).Seconds())
	}
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return res, false, receiver.Temporary(fmt.Errorf("circuit breaker open: %w", err), 0)
	}
	if err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = receiver.Temporary(fmt.Errorf("attempt timed out after %s: %w", w.cfg.AttemptTimeout, err), 0)
	}
	return res, called, err
}

// pace waits for the receiver's rate limiter.
func (w *worker) pace(ctx context.Context, hb *heartbeat) error {
	r := w.limiter.Reserve()
	if d := r.Delay(); d > 0 {
		if err := sleep(ctx, d, hb); err != nil {
			r.Cancel()
			return err
		}
	}
	return nil
}
