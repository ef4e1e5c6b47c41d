package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/detect"
)

// Options are the Notifier's dependencies.
type Options struct {
	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // default: a private registry
	Now        func() time.Time      // default: time.Now
	// HTTPClient carries every receiver request; default: one that does not
	// follow redirects. Per-attempt timeouts come from contexts.
	HTTPClient *http.Client
	// LogWriter is where the log receiver writes; default: os.Stdout.
	LogWriter io.Writer
	// Replicas of the streams and buckets; the daemon passes nats.replicas,
	// the one setting for every stream of Vigil. Default 1.
	Replicas int
	// Rules returns the rules loaded now; a new silence that would mute
	// every alert they can raise is refused. The daemon passes the running
	// engine's, so a rules reload applies at once. Default: none, and a
	// silence is judged only against every alert possible.
	Rules func() []*detect.Rule
	// MayDeliver, when set, is asked before every delivery attempt; false
	// means this instance may not deliver now (a cluster member that lost
	// its pin: the active member delivers), and the delivery goes back to
	// the outbox untried. Default: always deliver.
	MayDeliver func() bool
	// AckWaitAtMost, when set, caps ack_wait: on a cluster the daemon
	// passes cluster.failover_after, so that a delivery a crashed member
	// had taken comes back as soon as another member takes over, rather
	// than after the 30 s default. Workers mark what they hold in
	// progress every third of it, during an attempt too.
	AckWaitAtMost time.Duration
}

// Notifier routes, records and delivers alerts. Notify, the silence methods,
// FiringAlerts and QueueDepth are safe for concurrent use; Run runs once.
type Notifier struct {
	cfg      Settings
	js       jetstream.JetStream
	res      *resources
	state    *stateStore
	silences *silenceStore
	router   *router
	workers  []*worker
	names    map[string]bool
	log      *slog.Logger
	metrics  *metrics
	now      func() time.Time
	running  atomic.Bool
}

// New validates cfg, creates or updates the JetStream streams, buckets and
// consumers it needs, and builds the receivers. It starts nothing: call Run.
// It is Prepare, Commit and Activate; a reload, which must change nothing
// until every part of the new config is ready, calls them one by one.
func New(ctx context.Context, cfg Config, js jetstream.JetStream, opts Options) (*Notifier, error) {
	p, err := Prepare(ctx, cfg, js, opts)
	if err != nil {
		return nil, err
	}
	n, err := p.Commit(ctx)
	if err != nil {
		return nil, err
	}
	n.Activate()
	return n, nil
}

// Prepared is a Notifier built and checked whose JetStream changes are not
// made yet; see Prepare.
type Prepared struct {
	n    *Notifier
	plan *resourcePlan
}

// Prepare does the part of New that can fail without changing anything
// another reader sees: it validates cfg, builds the routes and receivers
// (reading their secret files), registers the metrics (reusing those a
// Notifier registered before, without changing their values), and reads the
// streams, buckets and consumers to plan what to create or update. Then
// Commit makes those changes, and Activate takes over the receivers'
// gauges once the Notifier replaces the running one.
func Prepare(ctx context.Context, cfg Config, js jetstream.JetStream, opts Options) (*Prepared, error) {
	if err := cfg.Validate(true); err != nil {
		return nil, fmt.Errorf("notify config: %w", err)
	}
	opts = opts.withDefaults()
	if opts.AckWaitAtMost > 0 && cfg.Notify.AckWait > opts.AckWaitAtMost {
		cfg.Notify.AckWait = opts.AckWaitAtMost
	}
	rt, err := newRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	var list []string
	for _, r := range cfg.Receivers {
		names[r.Name] = true
		list = append(list, r.Name)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	n := &Notifier{
		cfg: cfg.Notify, js: js, router: rt, names: names,
		state:    &stateStore{},
		silences: &silenceStore{now: opts.Now, rules: opts.Rules},
		log:      opts.Logger, metrics: m, now: opts.Now,
	}
	deps := workerDeps{cfg: cfg.Notify, metrics: m, state: n.state, dead: js, now: opts.Now, log: opts.Logger, mayDeliver: opts.MayDeliver}
	if n.workers, err = buildWorkers(cfg.Receivers, deps, opts); err != nil {
		return nil, err
	}
	plan, err := planResources(ctx, js, cfg.Notify, opts.Replicas, list)
	if err != nil {
		return nil, err
	}
	return &Prepared{n: n, plan: plan}, nil
}

// Commit creates or updates the streams, buckets and consumers Prepare
// found missing or different, and returns the Notifier. If a change fails,
// the ones made before it are undone (an updated stream, bucket or
// consumer gets its settings back, a created consumer is deleted) and the
// error says what failed. Call it once.
func (p *Prepared) Commit(ctx context.Context) (*Notifier, error) {
	res, err := p.plan.apply(ctx)
	if err != nil {
		return nil, err
	}
	n := p.n
	n.res = res
	n.state.kv = res.alerts
	n.silences.kv = res.silences
	for _, w := range n.workers {
		w.cons = res.consumers[w.name]
	}
	return n, nil
}

// Activate makes n's receivers those the per-receiver metrics describe: it
// creates their series, so dashboards show zeros, and resets their
// disabled and circuit gauges (a new Notifier re-enables every receiver),
// dropping those of receivers no longer configured. Call it when n replaces
// the running Notifier, once that one's workers have stopped.
func (n *Notifier) Activate() {
	names := make([]string, len(n.workers))
	for i, w := range n.workers {
		names[i] = w.name
	}
	n.metrics.activate(names)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogWriter == nil {
		o.LogWriter = os.Stdout
	}
	o.Replicas = max(o.Replicas, 1)
	return o
}

// maxNotifyConflicts bounds retries of Notify's read-modify-write when
// another writer changes the same alert's state in between.
const maxNotifyConflicts = 5

// Notify durably takes one alert transition: it applies alert state (a
// firing alert already announced is not announced again), silences and
// routes, then writes one delivery per receiver to the outbox and records
// the new state. It returns once JetStream has stored both; delivery happens
// in Run. It is meant to be called synchronously by the detection engine.
func (n *Notifier) Notify(ctx context.Context, a detect.Alert) error {
	return n.notify(ctx, a, modeLive)
}

// notifyMode says where a transition comes from.
type notifyMode int

const (
	modeLive     notifyMode = iota // the engine's transition
	modeAnnounce                   // what a rebuilt engine fires (Announce)
	modeCatchUp                    // what the state had firing when read (catchUp)
)

// errNoLongerFiring skips a catch-up announcement of an alert resolved
// since the state was read.
var errNoLongerFiring = errors.New("resolved since it was read")

// notify is Notify; an announcement (Announce, catchUp) is not a transition
// when the alert state already has the alert firing, and a catch-up
// announces nothing for an alert no longer firing.
func (n *Notifier) notify(ctx context.Context, a detect.Alert, mode notifyMode) error {
	if a.Fingerprint == "" {
		return errors.New("notify: alert has no fingerprint")
	}
	switch a.Transition {
	case detect.TransitionFiring, detect.TransitionRepeat, detect.TransitionResolved:
	default:
		return fmt.Errorf("notify: unknown transition %q", a.Transition)
	}
	for range maxNotifyConflicts {
		p, err := n.notifyOnce(ctx, a, mode)
		if errors.Is(err, errConflict) {
			continue
		}
		if errors.Is(err, errNoLongerFiring) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("notify %s: %w", a.Rule, err)
		}
		n.account(a, p, mode != modeLive)
		return nil
	}
	return fmt.Errorf("notify %s: %w after %d tries", a.Rule, errConflict, maxNotifyConflicts)
}

func (n *Notifier) notifyOnce(ctx context.Context, a detect.Alert, mode notifyMode) (plan, error) {
	prev, rev, err := n.state.alert(ctx, a.Fingerprint)
	if err != nil {
		return plan{}, err
	}
	if mode == modeCatchUp && (prev == nil || !prev.Firing) {
		// Resolved between catchUp's read and now: announcing it would
		// start a new episode no engine fires.
		return plan{}, errNoLongerFiring
	}
	a = episodeAlert(prev, a)
	labels := alertLabels(a)
	in := planInput{
		prev: prev, alert: a, now: n.now(),
		configured: func(name string) bool { return n.names[name] },
	}
	in.routed, in.perIncident = n.router.receivers(labels)
	if a.Transition != detect.TransitionResolved {
		if in.silencedBy, err = n.silences.matching(ctx, labels); err != nil {
			return plan{}, err
		}
		if len(in.perIncident) > 0 && a.IncidentID != "" {
			inc, _, err := n.state.incident(ctx, a.IncidentID)
			if err != nil {
				return plan{}, err
			}
			in.told = inc.Told
		}
	}
	p := makePlan(in)
	// Deliveries first: if we stop between the two writes, the state still
	// says "not announced", the engine's next emit enqueues the same ids
	// again and JetStream drops the duplicates.
	if err := n.enqueue(ctx, p.deliveries); err != nil {
		return plan{}, err
	}
	if p.record != nil {
		if err := n.state.putAlert(ctx, a.Fingerprint, p.record, rev); err != nil {
			return plan{}, err
		}
	}
	// Last: if we stop before this, a later alert of the incident may
	// reach a per_incident receiver once more, which beats missing one.
	if len(p.told) > 0 {
		if err := n.state.tell(ctx, a.IncidentID, p.told, in.now); err != nil {
			n.log.Warn("incident state not recorded; a later alert of the incident may reach per_incident receivers again",
				"incident_id", a.IncidentID, "err", err)
		}
	}
	return p, nil
}

// enqueue publishes deliveries concurrently and waits for JetStream to
// acknowledge all of them.
func (n *Notifier) enqueue(ctx context.Context, ds []delivery) error {
	futures := make([]jetstream.PubAckFuture, 0, len(ds))
	for _, d := range ds {
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encode delivery: %w", err)
		}
		msg := &nats.Msg{Subject: deliverPrefix + d.Receiver, Data: b, Header: nats.Header{}}
		f, err := n.js.PublishMsgAsync(msg, jetstream.WithMsgID(d.ID), jetstream.WithExpectStream(OutboxStream))
		if err != nil {
			return fmt.Errorf("queue delivery for %s: %w", d.Receiver, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("queue delivery for %s: %w", ds[i].Receiver, err)
		case <-ctx.Done():
			return fmt.Errorf("queue delivery for %s: %w", ds[i].Receiver, ctx.Err())
		}
	}
	return nil
}

func (n *Notifier) account(a detect.Alert, p plan, announce bool) {
	if p.outcome == outcomeDuplicate && len(p.deliveries) > 0 {
		names := make([]string, len(p.deliveries))
		for i, d := range p.deliveries {
			names[i] = d.Receiver
		}
		n.log.Info("firing alert sent to receivers that had not heard of it", "rule", a.Rule,
			"fingerprint", a.Fingerprint, "receivers", names)
	}
	if announce && p.outcome == outcomeDuplicate {
		// Announcing an alert the state already has firing (after a
		// restart or a rules reload) is not a transition, let alone a fault.
		return
	}
	n.metrics.transitions.WithLabelValues(string(a.Transition), p.outcome).Inc()
	switch p.outcome {
	case outcomeSilenced:
		n.metrics.silenced.Inc()
		n.log.Info("alert silenced", "rule", a.Rule, "fingerprint", a.Fingerprint,
			"transition", string(a.Transition), "silences", p.record.SilencedBy)
	case outcomeFolded:
		n.log.Info("alert's incident already announced to every receiver its routes pick", "rule", a.Rule,
			"fingerprint", a.Fingerprint, "incident_id", a.IncidentID)
	case outcomeUnrouted:
		n.log.Warn("alert matched no receiver", "rule", a.Rule, "fingerprint", a.Fingerprint,
			"transition", string(a.Transition))
	case outcomeDuplicate:
		n.log.Debug("alert transition already handled", "rule", a.Rule, "fingerprint", a.Fingerprint,
			"transition", string(a.Transition))
	}
}

// FiringAlerts returns the alerts the state says are firing, with the
// StartsAt of their episode, so the engine can be re-seeded after a restart
// and resolve them later.
func (n *Notifier) FiringAlerts(ctx context.Context) ([]detect.Alert, error) {
	recs, err := n.state.alerts(ctx)
	if err != nil {
		return nil, err
	}
	var out []detect.Alert
	for _, r := range recs {
		if r.Firing {
			a := r.Alert
			a.State, a.Transition = detect.StateFiring, detect.TransitionFiring
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b detect.Alert) int { return a.StartsAt.Compare(b.StartsAt) })
	return out, nil
}

// ListSilences returns every silence (pending, active, and expired within
// silence_retention), newest first.
func (n *Notifier) ListSilences(ctx context.Context) ([]Silence, error) {
	return n.silences.all(ctx)
}

// CreateSilence validates s (a *ValidationError says what is wrong, e.g.
// that it would mute every alert, alone or with the silences in force),
// assigns its id and stores it. It applies to alert transitions from then
// on.
func (n *Notifier) CreateSilence(ctx context.Context, s Silence) (Silence, error) {
	return n.silences.create(ctx, s)
}

// ExpireSilence ends silence id now; ErrSilenceNotFound when there is none.
func (n *Notifier) ExpireSilence(ctx context.Context, id string) error {
	return n.silences.expire(ctx, id)
}

// DisabledReceivers names the receivers this Notifier stopped using after an
// answer that no later notification can succeed past (HTTP 410 Gone, a
// revoked token). Its deliveries stay queued; only a Notifier built anew
// (New, which also re-reads secret files) delivers them, so a reload must
// build one when this is not empty, even if the configuration is unchanged.
func (n *Notifier) DisabledReceivers() []string {
	var out []string
	for _, w := range n.workers {
		if w.disabled.Load() {
			out = append(out, w.name)
		}
	}
	return out
}

// QueueDepth returns how many deliveries wait in the outbox (for every
// receiver) and updates the vigil_notify_queue_depth gauge.
func (n *Notifier) QueueDepth(ctx context.Context) (uint64, error) {
	info, err := n.res.outbox.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox info: %w", err)
	}
	n.metrics.queueDepth.Set(float64(info.State.Msgs))
	return info.State.Msgs, nil
}
