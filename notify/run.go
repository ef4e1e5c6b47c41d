package notify

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Maintenance intervals.
const (
	depthInterval = 5 * time.Second
	purgeInterval = 10 * time.Minute
)

// Run delivers until ctx is done: one worker per receiver, plus upkeep
// (telling receivers added since an alert fired that it fires, the
// queue-depth gauge, purging old alert state and expired silences).
// It returns after every worker has finished its in-flight attempt;
// deliveries not yet acknowledged are handed out again after a restart.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notify: Run is already running")
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, w := range n.workers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Go(func() { n.maintain(ctx) })
	wg.Wait()
	return nil
}

func (n *Notifier) maintain(ctx context.Context) {
	depth := time.NewTicker(depthInterval)
	defer depth.Stop()
	purge := time.NewTicker(purgeInterval)
	defer purge.Stop()
	n.refreshDepth(ctx)
	caughtUp := n.catchUp(ctx)
	n.purge(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-depth.C:
			n.refreshDepth(ctx)
			if !caughtUp {
				caughtUp = n.catchUp(ctx)
			}
		case <-purge.C:
			n.purge(ctx)
		}
	}
}

func (n *Notifier) refreshDepth(ctx context.Context) {
	if _, err := n.QueueDepth(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("read outbox depth failed", "err", err)
	}
}

func (n *Notifier) purge(ctx context.Context) {
	now := n.now()
	cutoff := now.Add(-n.cfg.ResolvedRetention)
	recs, err := n.state.alerts(ctx)
	if err == nil {
		var k, m int
		if k, err = n.state.purgeResolved(ctx, recs, cutoff); err == nil {
			m, err = n.state.purgeIncidents(ctx, recs, cutoff)
		}
		if k+m > 0 {
			n.log.Info("purged resolved alert state", "alerts", k, "incident_records", m)
		}
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("purge resolved alert state failed", "err", err)
	}
	if k, err := n.silences.purgeExpired(ctx, now.Add(-n.cfg.SilenceRetention)); err != nil {
		if ctx.Err() == nil {
			n.log.Warn("purge expired silences failed", "err", err)
		}
	} else if k > 0 {
		n.log.Info("purged expired silences", "silences", k)
	}
}
