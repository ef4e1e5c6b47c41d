package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/vigil-sec/vigil/notify/alertmanager"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/notify/receiver"
	"github.com/vigil-sec/vigil/notify/slack"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// buildWorkers builds each receiver and its worker on deps; Commit gives the
// workers their consumers. Slack receivers posting to the same channel share
// one rate limiter.
func buildWorkers(rcs []ReceiverConfig, deps workerDeps, opts Options) ([]*worker, error) {
	h := receiver.NewHTTP(opts.HTTPClient, deps.cfg.MaxResponseBytes, opts.Now)
	limiters := map[string]*rate.Limiter{}
	var workers []*worker
	for _, rc := range rcs {
		recv, shareKey, rl, err := buildReceiver(rc, deps.cfg.RateLimits, h, opts)
		if err != nil {
			return nil, fmt.Errorf("receiver %s: %w", rc.Name, err)
		}
		if rc.RateLimit != nil {
			rl = *rc.RateLimit
		}
		key := fmt.Sprintf("%s|%g|%d", shareKey, rl.PerSecond, rl.Burst)
		lim, ok := limiters[key]
		if !ok {
			lim = newLimiter(rl)
			limiters[key] = lim
		}
		floodLimit := deps.cfg.FloodLimit
		if rc.FloodLimit > 0 {
			floodLimit = rc.FloodLimit
		}
		workers = append(workers, newWorker(deps, rc.Name, recv, lim, floodLimit))
	}
	return workers, nil
}

// buildReceiver returns the receiver for rc, the key under which receivers
// share a rate limiter, and the kind's default rate from rates (the log is
// unlimited).
func buildReceiver(rc ReceiverConfig, rates KindRates, h *receiver.HTTP, opts Options) (receiver.Receiver, string, RateLimit, error) {
	switch rc.Kind() {
	case KindSlack:
		s, err := slack.New(*rc.Slack, h, opts.Now)
		key := "receiver|" + rc.Name
		if rc.Slack.Channel != "" && rc.Slack.WebhookURL.IsZero() && rc.Slack.WebhookURLFile == "" {
			key = "slack|" + rc.Slack.APIURL + "|" + rc.Slack.Channel
		}
		return s, key, rates.Slack, err
	case KindWebhook:
		w, err := webhook.New(*rc.Webhook, h, opts.Now)
		return w, "receiver|" + rc.Name, rates.Webhook, err
	case KindAlertmanager:
		am, err := alertmanager.New(*rc.Alertmanager, h, opts.Now)
		return am, "receiver|" + rc.Name, rates.Alertmanager, err
	case KindLog:
		return jsonlog.New(opts.LogWriter, opts.Now), "receiver|" + rc.Name, RateLimit{}, nil
	}
	return nil, "", RateLimit{}, errors.New("no receiver kind set")
}

// newLimiter returns a token bucket for rl; a zero RateLimit is unlimited.
func newLimiter(rl RateLimit) *rate.Limiter {
	if rl.PerSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
}

// heartbeat keeps held deliveries from being handed out again: JetStream
// restarts a message's ack timer on each InProgress.
type heartbeat struct {
	msgs  []inbound
	every time.Duration
	last  time.Time
}

func (h *heartbeat) beat() {
	h.mark()
	h.last = time.Now()
}

// mark restarts the ack timer of every held delivery.
func (h *heartbeat) mark() {
	for _, in := range h.msgs {
		_ = in.msg.InProgress() // a failed heartbeat only risks a redelivery, which is deduplicated
	}
}

// during beats every h.every on a goroutine of its own until stop is
// called: an attempt (up to attempt_timeout) may last longer than ack_wait,
// and the worker, waiting for it, cannot beat meanwhile. h.msgs must not
// change until then.
func (h *heartbeat) during() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(h.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h.mark() // not beat: h.last is the worker's
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

func (h *heartbeat) maybe() {
	if time.Since(h.last) >= h.every {
		h.beat()
	}
}

// sleep waits d or until ctx is done, beating hb meanwhile.
func sleep(ctx context.Context, d time.Duration, hb *heartbeat) error {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(hb.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case <-tick.C:
			hb.beat()
		}
	}
}
