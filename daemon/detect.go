package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/privacy"
	"github.com/vigil-sec/vigil/rules"
)

// detector owns the detection engine. A rule reload builds a new engine
// (with its own metric registry, so old and new never collide), rebuilds its
// windows from the stream and swaps it in while intake is paused.
type detector struct {
	detectorDeps
	state atomic.Pointer[engineState]
	// replayed is how far the engine in force applied the stream by its
	// rebuild (a cluster member's is failover.r); set while intake is
	// paused.
	replayed ingest.Replayed
	// checkpointEvery is detect.checkpoint_every in force, in ns: it does
	// not change detection, so a reload that changes only it keeps the
	// engine.
	checkpointEvery atomic.Int64
	// stored is the stream sequence the last checkpoint stored holds.
	stored atomic.Uint64
}

// detectorDeps are what detection works with, given when it is built.
type detectorDeps struct {
	clock    clock.Clock
	log      *slog.Logger
	metrics  *detectionMetrics
	notifier *notifierRunner  // takes alert transitions
	stream   *ingest.Consumer // rebuilt from, paused for swaps, feeds the engine
	member   *failover        // nil unless a cluster member: says whether this instance may announce
	// checkpoints stores and restores checkpoints of detection state; nil
	// when they cannot be stored (see openCheckpoints).
	checkpoints *checkpointStore
	tempDir     string // data_dir: checkpoints go through files there
}

type engineState struct {
	engine *detect.Engine
	reg    *prometheus.Registry
	cfg    detect.Config
	digest string // of the compiled rule set, to skip no-op reloads
	// privacy pseudonymises the labels of the engine's alerts (see build);
	// it never changes for the engine's life, so that one alert keeps one
	// fingerprint. A privacy change at reload builds a new engine.
	privacy *privacy.Pseudonymizer
	// unsettled is set from the rebuild until settle has resolved the
	// alerts announced before it that no longer fire.
	unsettled atomic.Bool
}

func newDetector(cfg detect.Config, p *privacy.Pseudonymizer, deps detectorDeps) (*detector, error) {
	x := &detector{detectorDeps: deps}
	x.checkpointEvery.Store(int64(cfg.CheckpointEvery))
	st, err := x.build(cfg, p)
	if err != nil {
		return nil, err
	}
	x.state.Store(st)
	x.metrics.inForce(st)
	return x, nil
}

// detectionMetrics are the daemon's figures about detection as a whole;
// the engine's own are in its registry.
type detectionMetrics struct {
	rebuildSeconds prometheus.Gauge
	rebuildEvents  prometheus.Gauge
	fromCheckpoint prometheus.Gauge
	rules          *prometheus.GaugeVec

	mu          sync.Mutex
	lastRebuild RebuildStatus
}

func newDetectionMetrics(reg prometheus.Registerer) *detectionMetrics {
	m := &detectionMetrics{
		rebuildSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_rebuild_seconds",
			Help: "How long the last rebuild of detection windows from the stream took (at start-up, or for a rules reload)."}),
		rebuildEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_rebuild_events",
			Help: "Events the last rebuild of detection windows replayed."}),
		fromCheckpoint: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_rebuild_from_checkpoint",
			Help: "1 when the last rebuild of detection windows started from a checkpoint and replayed only the events after it, else 0."}),
		rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_detection_rules_info",
			Help: "Digest of the rule set in force (rules, lists and detect settings); always 1. Cluster members should agree."}, []string{"digest"}),
	}
	reg.MustRegister(m.rebuildSeconds, m.rebuildEvents, m.fromCheckpoint, m.rules)
	return m
}

// RebuildStatus describes the last rebuild of detection windows.
type RebuildStatus struct {
	At      time.Time `json:"at"`
	Events  int       `json:"events"`
	Seconds float64   `json:"seconds"`
	// Checkpoint is when the checkpoint the rebuild started from was
	// taken; absent when it replayed the rules' whole lookback.
	Checkpoint *time.Time `json:"checkpoint,omitempty"`
}

// rebuilt records a rebuild; from is the checkpoint's mark, or the zero
// Mark when there was none.
func (m *detectionMetrics) rebuilt(at time.Time, events int, took time.Duration, from ingest.Mark) {
	m.rebuildSeconds.Set(took.Seconds())
	m.rebuildEvents.Set(float64(events))
	st := RebuildStatus{At: at, Events: events, Seconds: took.Seconds()}
	m.fromCheckpoint.Set(0)
	if from.Seq > 0 {
		m.fromCheckpoint.Set(1)
		st.Checkpoint = &from.Taken
	}
	m.mu.Lock()
	m.lastRebuild = st
	m.mu.Unlock()
}

func (m *detectionMetrics) last() RebuildStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastRebuild
}

// inForce records that st's rule set is the one in force.
func (m *detectionMetrics) inForce(st *engineState) {
	m.rules.Reset()
	m.rules.WithLabelValues(st.rulesDigest()).Set(1)
}

// rulesDigest is the short form of st's digest that members compare.
func (st *engineState) rulesDigest() string { return st.digest[:16] }

// build loads the rules named by cfg and creates a live engine for them
// whose alerts carry labels pseudonymised by p (a copy of p: later changes
// to p do not reach the engine). Pseudonymising labels before the engine
// computes fingerprints and templates is the one egress point for personal
// data: alerts leave detection through Emit, through Firing (announced at
// start, reconciled, listed by the API), and all carry only pseudonyms.
func (x *detector) build(cfg detect.Config, p *privacy.Pseudonymizer) (*engineState, error) {
	rs, err := rules.LoadWith(cfg.Rules, cfg.Lists)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(rs)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	// The digest covers the list files too: a reload re-reads them.
	sum := sha256.Sum256(append(append(raw, fmt.Sprint(detectionSettings(cfg))...), listFiles(cfg.Lists)...))
	reg := prometheus.NewRegistry()
	own := new(privacy.Pseudonymizer)
	own.Use(p)
	var label func(name, value string) string
	if own.Enabled(privacy.FieldSourceIP) || own.Enabled(privacy.FieldUser) {
		label = own.Label
	}
	opts := cfg.Options()
	opts.Live, opts.Now, opts.Logger = true, x.clock.Now, x.log
	opts.Registerer, opts.Emit, opts.Label = reg, x.emit, label
	opts.TempDir = x.tempDir // a container's /tmp may be small
	eng, err := detect.New(rs, opts)
	if err != nil {
		return nil, err
	}
	return &engineState{engine: eng, reg: reg, cfg: cfg, digest: fmt.Sprintf("%x", sum), privacy: own}, nil
}

func (x *detector) engine() *detect.Engine { return x.state.Load().engine }

// emit queues an alert transition in the durable outbox. It runs with the
// engine's lock held, so it only publishes.
func (x *detector) emit(a detect.Alert) {
	if fo := x.member; fo != nil && !fo.mayAnnounce() {
		fo.metrics.Fenced.Inc()
		x.log.Warn("alert transition not announced: another member is active", "rule", a.Rule, "fingerprint", a.Fingerprint, "transition", string(a.Transition))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := x.notifier.Notify(ctx, a); err != nil {
		x.log.Error("alert not queued for delivery", "err", err, "rule", a.Rule, "fingerprint", a.Fingerprint, "transition", string(a.Transition))
	}
}

// lookback is how much event time st's rules depend on: their windows,
// baselines and what sequences learn as known (Rule.Lookback).
func lookback(st *engineState) time.Duration {
	longest := time.Duration(0)
	for _, r := range st.engine.Rules() {
		longest = max(longest, r.Lookback())
	}
	return longest + st.cfg.Lateness
}

// listFiles returns the contents of the files the lists read, for the
// digest that tells whether a reload changes detection.
func listFiles(lists map[string]detect.ListSpec) []byte {
	var b []byte
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		if f := lists[name].File; f != "" {
			data, _ := os.ReadFile(f) // an unreadable file failed the load already
			b = append(append(b, f...), data...)
		}
	}
	return b
}

// rebuild replays the stream's recent events into st's muted engine. The
// caller puts the engine in force, tells the consumer to skip what was
// replayed, and calls announce.
func (x *detector) rebuild(ctx context.Context, st *engineState) (ingest.Replayed, error) {
	start := x.clock.Now()
	since := start.Add(-lookback(st))
	var r ingest.Replayed
	err := muted(st.engine, func() (err error) {
		r, err = x.stream.Rebuild(ctx, since, st.engine)
		return err
	})
	if err != nil {
		return r, err
	}
	took := x.clock.Now().Sub(start)
	x.metrics.rebuilt(start, r.Events, took, ingest.Mark{})
	x.log.Info("detection windows rebuilt", "events", r.Events, "since", since, "took", took)
	return r, nil
}

// warmStart rebuilds the windows of the engine in force at start: from
// the latest checkpoint that fits it, replaying only the events after it,
// or else from the stream's recent events (rebuild). It returns the engine
// state in force, which is a new one when restoring failed half-way.
func (x *detector) warmStart(ctx context.Context) (*engineState, ingest.Replayed, error) {
	st := x.state.Load()
	if x.checkpoints != nil && x.checkpointEvery.Load() != 0 {
		start := x.clock.Now()
		since := start.Add(-lookback(st))
		r, info, touched, err := x.restore(ctx, st, since)
		var no errNoCheckpoint
		switch {
		case err == nil:
			took := x.clock.Now().Sub(start)
			x.metrics.rebuilt(start, r.Events, took, info.Mark)
			x.log.Info("detection windows restored from a checkpoint", "checkpoint", info.Mark.Taken, "events_after_it", r.Events, "took", took)
			x.stored.Store(info.Mark.Seq) // no need to store the same again
			return st, r, nil
		case errors.As(err, &no):
			x.log.Info("detection windows not restored from a checkpoint; rebuilding them from the stream", "reason", no.why, "since", since)
		default:
			x.log.Warn("detection windows not restored from a checkpoint; rebuilding them from the stream", "err", err)
		}
		if touched { // the engine holds part of the checkpoint's state: start over on a new one
			fresh, berr := x.build(st.cfg, st.privacy)
			if berr != nil {
				return st, r, berr
			}
			x.state.Store(fresh)
			x.metrics.inForce(fresh)
			st.engine.Close()
			st = fresh
		}
	}
	r, err := x.rebuild(ctx, st)
	return st, r, err
}

// muted runs fn with eng's alert transitions muted.
func muted(eng *detect.Engine, fn func() error) error {
	eng.SetMuted(true)
	defer eng.SetMuted(false)
	return fn()
}

// announce announces what st's rebuilt engine fires and was not announced
// yet (events stored before a restart but never processed may have crossed
// a threshold). Alerts announced before that no longer fire are resolved
// later, by settle, once ingest has caught up: until then, events still to
// come may fire them again, and resolving them now would announce them
// twice. A failure is logged: settle announces them too.
func (x *detector) announce(ctx context.Context, st *engineState) {
	if fo := x.member; fo != nil && !fo.isActive() {
		return // the active member announces
	}
	st.unsettled.Store(true)
	firing := st.engine.Firing()
	if err := x.notifier.Announce(ctx, firing); err != nil {
		x.log.Warn("alerts firing after the rebuild not announced yet; retrying once ingest has caught up", "err", err, "firing", len(firing))
	}
}

// settle resolves the alerts announced as firing that st's engine, caught
// up with the stream, no longer fires (at its watermark), once per rebuild.
// Intake is paused meanwhile, so that no alert fires or resolves between
// reading the engine and the alert state.
func (x *detector) settle(ctx context.Context, st *engineState) {
	if !st.unsettled.Load() {
		return
	}
	if fo := x.member; fo != nil && !fo.mayAnnounce() {
		return // a member that lost its pin resolves nothing
	}
	var err error
	x.stream.Paused(func() {
		err = x.notifier.Reconcile(ctx, st.engine.Firing(), st.engine.Watermark())
	})
	if err != nil {
		x.log.Warn("alert state not reconciled; retrying in a second", "err", err)
		return
	}
	st.unsettled.Store(false)
}

// prepare builds an engine for cfg and p, or returns nil when neither the
// rules, the settings nor the pseudonymisation changed.
func (x *detector) prepare(cfg detect.Config, p *privacy.Pseudonymizer) (*engineState, error) {
	st, err := x.build(cfg, p)
	if err != nil {
		return nil, err
	}
	if cur := x.state.Load(); st.digest == cur.digest && st.privacy.Equal(cur.privacy) {
		st.engine.Close()
		return nil, nil
	}
	return st, nil
}

// swap rebuilds st's windows from the stream and puts it in force. The
// long replay runs while the old engine keeps working; intake pauses only
// to replay what it delivered meanwhile, so no event is missed or applied
// twice. Then, the replay done, commit runs (a reload's other fallible
// step that changes what others see), and only if it succeeds is st put in
// force. On error the old engine stays in force; the caller closes st.
// The caller announces st's alerts once the rest of a reload is in force.
func (x *detector) swap(ctx context.Context, st *engineState, commit func(context.Context) error) error {
	r, err := x.rebuild(ctx, st)
	var commitErr error
	if err == nil {
		x.stream.Paused(func() {
			if fo := x.member; fo != nil {
				fo.mu.Lock() // a standby's following waits for the swap
				defer fo.mu.Unlock()
			}
			err = muted(st.engine, func() (err error) {
				r, err = x.stream.CatchUp(ctx, r, st.engine)
				return err
			})
			if err != nil {
				return
			}
			if commitErr = commit(ctx); commitErr != nil {
				return
			}
			old := x.state.Swap(st)
			x.stored.Store(0) // the stored checkpoint is the old rules'
			x.metrics.inForce(st)
			x.stream.SetSink(st.engine)
			if fo := x.member; fo != nil {
				fo.swapped(r)
			} else {
				x.stream.SkipReplayed(r)
				x.replayed = r
			}
			old.engine.Close()
		})
	}
	if err != nil {
		return fmt.Errorf("rebuild windows for the new rules: %w", err)
	}
	return commitErr
}

// tick advances the watermark with the wall clock every second, so alerts
// resolve when traffic stops, but only while ingest has caught up with the
// stream: a backlog (after a restart or an outage) is judged on event time,
// and its events must not become late because the clock moved on. The first
// time ingest is caught up after a rebuild, it settles alert state.
func (x *detector) tick(ctx context.Context) {
	ticker, tick := x.clock.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if !x.stream.CaughtUp() { // see ingest.Consumer.CaughtUp
				continue
			}
			if fo := x.member; fo != nil && !fo.isActive() {
				continue // a standby's watermark follows the active member's events
			}
			st := x.state.Load()
			st.engine.Tick(x.clock.Now())
			x.settle(ctx, st)
		}
	}
}

func (x *detector) close() { x.engine().Close() }

// Gather implements prometheus.Gatherer over the current engine's metrics.
func (x *detector) Gather() ([]*dto.MetricFamily, error) { return x.state.Load().reg.Gather() }
