package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify"
)

// notifierRunner owns the notifier and its delivery workers. A reload that
// changes receivers, routes or delivery settings stops the workers (attempts
// in flight finish; queued deliveries stay in JetStream), builds a new
// notifier and starts it.
type notifierRunner struct {
	js   jetstream.JetStream
	log  *slog.Logger
	opts notify.Options // Rules is loadedRules
	// rules returns the running engine's rules; nil until detection is
	// built (see useRules).
	rules atomic.Pointer[func() []*detect.Rule]
	cur   atomic.Pointer[notify.Notifier]

	mu     sync.Mutex
	cfg    notify.Config
	held   bool // a cluster standby: no delivery workers
	parent context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newNotifierRunner builds the notifier for cfg on js; opts are the
// notifier's collaborators but Rules (see useRules).
func newNotifierRunner(ctx context.Context, js jetstream.JetStream, cfg notify.Config, opts notify.Options) (*notifierRunner, error) {
	r := &notifierRunner{js: js, log: opts.Logger, opts: opts, cfg: cfg}
	r.opts.Rules = r.loadedRules
	n, err := retryLost(ctx, r.log, "declaring the notification streams", func(ctx context.Context) (*notify.Notifier, error) {
		return r.build(ctx, cfg)
	})
	if err != nil {
		return nil, err
	}
	r.cur.Store(n)
	return r, nil
}

func (r *notifierRunner) build(ctx context.Context, cfg notify.Config) (*notify.Notifier, error) {
	n, err := notify.New(ctx, cfg, r.js, r.opts)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return n, nil
}

// useRules makes rules the source of the loaded rules new silences are
// judged against.
func (r *notifierRunner) useRules(rules func() []*detect.Rule) { r.rules.Store(&rules) }

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
			r.log.Error("notification delivery stopped", "err", err)
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
	p, err := notify.Prepare(ctx, cfg, r.js, r.opts)
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
	rules := r.rules.Load()
	if rules == nil { // still starting
		return nil
	}
	return (*rules)()
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
