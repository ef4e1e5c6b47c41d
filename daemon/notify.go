package daemon

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify"
)

// notifierRunner owns the notifier and its delivery workers. A reload that
// changes receivers, routes or delivery settings stops the workers (attempts
// in flight finish; queued deliveries stay in JetStream), builds a new
// notifier and starts it.
type notifierRunner struct {
	d   *Daemon
	cur atomic.Pointer[notify.Notifier]

	mu     sync.Mutex
	cfg    notify.Config
	held   bool // a cluster standby: no delivery workers
	parent context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newNotifierRunner(ctx context.Context, d *Daemon, cfg notify.Config) (*notifierRunner, error) {
	r := &notifierRunner{d: d, cfg: cfg}
	n, err := retryLost(ctx, d.log, "declaring the notification streams", func(ctx context.Context) (*notify.Notifier, error) {
		return r.build(ctx, cfg)
	})
	if err != nil {
		return nil, err
	}
	r.cur.Store(n)
	return r, nil
}

func (r *notifierRunner) build(ctx context.Context, cfg notify.Config) (*notify.Notifier, error) {
	n, err := notify.New(ctx, cfg, r.d.js, r.options())
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return n, nil
}

func (r *notifierRunner) options() notify.Options {
	return notify.Options{
		Logger: r.d.log, Registerer: r.d.reg, Now: r.d.clock.Now, LogWriter: r.d.opts.Stdout, Replicas: r.d.cfg.NATS.Replicas,
		Rules: r.loadedRules,
	}
}

// start runs the delivery workers until ctx is done.
func (r *notifierRunner) start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parent = ctx
	if !r.held {
		r.runLocked()
	}
}

// hold stops the delivery workers (attempts in flight finish; queued
// deliveries stay in JetStream for the active member) or, with false,
// starts them again.
func (r *notifierRunner) hold(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == on {
		return
	}
	r.held = on
	if on {
		r.stopLocked()
	} else if r.parent != nil {
		r.runLocked()
	}
}

func (r *notifierRunner) stopLocked() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

func (r *notifierRunner) runLocked() {
	ctx, cancel := context.WithCancel(r.parent)
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	n := r.cur.Load()
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			r.d.log.Error("notification delivery stopped", "err", err)
		}
	}()
}

// wait blocks until the workers started by start have returned.
func (r *notifierRunner) wait() {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// prepare prepares a notifier for cfg, changing nothing until its Commit,
// or returns nil when cfg is the running config and no receiver is
// disabled (a reload re-enables them).
func (r *notifierRunner) prepare(ctx context.Context, cfg notify.Config) (*notify.Prepared, error) {
	r.mu.Lock()
	same := reflect.DeepEqual(cfg, r.cfg)
	r.mu.Unlock()
	if same && len(r.n().DisabledReceivers()) == 0 {
		return nil, nil
	}
	p, err := notify.Prepare(ctx, cfg, r.d.js, r.options())
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return p, nil
}

// swap stops the running workers (attempts in flight finish), lets n take
// over the receivers' gauges and starts n's workers.
func (r *notifierRunner) swap(n *notify.Notifier, cfg notify.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	n.Activate()
	r.cur.Store(n)
	r.cfg = cfg
	if r.parent != nil && !r.held {
		r.runLocked()
	}
}

func (r *notifierRunner) n() *notify.Notifier { return r.cur.Load() }

// loadedRules are the running engine's rules, which new silences are judged
// against; a rules reload swaps the engine, so they are always current.
func (r *notifierRunner) loadedRules() []*detect.Rule {
	if r.d.detector == nil { // still starting
		return nil
	}
	return r.d.detector.engine().Rules()
}

// Notify queues a for delivery.
func (r *notifierRunner) Notify(ctx context.Context, a detect.Alert) error {
	return r.n().Notify(ctx, a)
}

// Announce announces the alerts of firing not announced yet.
func (r *notifierRunner) Announce(ctx context.Context, firing []detect.Alert) error {
	return r.n().Announce(ctx, firing)
}

// Reconcile brings alert state in line with what the engine fires.
func (r *notifierRunner) Reconcile(ctx context.Context, firing []detect.Alert, endsAt time.Time) error {
	return r.n().Reconcile(ctx, firing, endsAt)
}
