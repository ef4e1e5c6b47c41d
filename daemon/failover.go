package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/cluster"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
)

// failover runs this instance as a cluster member (cluster.enabled): the
// active member consumes, detects, announces and delivers; a standby
// follows the stream into its muted engine, so that taking over is a short
// catch-up. JetStream decides who is active (see package cluster and
// ingest.Failover); failover only changes the daemon's role when told.
type failover struct {
	cfg      cluster.Config
	clock    clock.Clock
	log      *slog.Logger
	stream   *ingest.Consumer
	detector *detector
	notifier *notifierRunner
	table    *cluster.Table
	metrics  *cluster.Metrics

	mu     sync.Mutex      // serialises following, promotion, demotion and engine swaps
	r      ingest.Replayed // how far the engine has applied the stream
	active atomic.Bool

	// The fences before announcing and before delivering keep their own
	// answers: delivery workers ask all the time, and their fresh "yes"
	// from just before the pin moved must not let an engine that wakes
	// from a freeze announce on it.
	announceFence, deliverFence fence
	wakeFailed                  bool // the last wake check failed (run's goroutine only)
}

// followEvery is how often a standby catches up with the active member:
// each round that finds new events replays them through an ephemeral
// consumer, a request to the JetStream meta leader, so not more often.
const followEvery = time.Second

// fenceFor is how long a confirmation of the pin stands before an alert
// transition asks the server again.
const fenceFor = time.Second

// newFailover prepares this instance's cluster membership. Its consumer
// side (ingest) and its delivery fence (mayDeliver) are ready at once, for
// the events consumer and the notifier to be built with; join completes
// it.
func newFailover(cfg cluster.Config, clk clock.Clock, log *slog.Logger, reg prometheus.Registerer) *failover {
	return &failover{cfg: cfg, clock: clk, log: log, metrics: cluster.NewMetrics(reg)}
}

// join gives the member the consumer, detector and notifier it switches
// between standby and active, and declares the member table in js.
func (f *failover) join(ctx context.Context, js jetstream.JetStream, version string, replicas int, stream *ingest.Consumer, x *detector, n *notifierRunner) error {
	f.stream, f.detector, f.notifier = stream, x, n
	t, err := retryLost(ctx, f.log, "declaring the member table", func(ctx context.Context) (*cluster.Table, error) {
		return cluster.NewTable(ctx, js, f.cfg.MemberName(), version, cluster.Heartbeat, replicas, f.clock, f.log, f.metrics)
	})
	if err != nil {
		return err
	}
	f.table = t
	return nil
}

// ingest is the consumer's side of the failover.
func (f *failover) ingest() *ingest.Failover {
	return &ingest.Failover{
		After: f.cfg.FailoverAfter, PullExpiry: f.cfg.PullExpiry(),
		Promote: f.promote, Demote: f.demote,
		// Vigil publishes its admin API's failed logins there already, so
		// the shipped NATS permissions allow it.
		WakeSubject: ingest.SubjectPrefix + admin.AuthFailureService,
	}
}

func (f *failover) isActive() bool { return f.active.Load() }

// start makes the rebuilt engine a standby's, following from r.
func (f *failover) start(r ingest.Replayed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.r = r
	f.detector.engine().SetMuted(true)
	f.log.Info("cluster member started as a standby", "member", f.cfg.MemberName())
}

// run follows the stream while standby and keeps the member row fresh,
// until ctx is done.
func (f *failover) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { f.table.Run(ctx, f.progress) })
	ticker, tick := f.clock.NewTicker(followEvery)
	defer ticker.Stop()
	waker, wake := f.clock.NewTicker(f.wakeEvery())
	defer waker.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick:
			f.follow(ctx)
		case <-wake:
			f.wake(ctx)
		}
	}
}

// wakeEvery is how often a member checks that some member holds the pin:
// a quarter of failover_after, so that on a quiet stream a crash costs
// about 1.25 failover_after rather than waiting for the next event.
func (f *failover) wakeEvery() time.Duration { return max(followEvery, f.cfg.FailoverAfter/4) }

// wake gets a member pinned when none is (see ingest.Consumer.Wake). A
// failure is logged once until a check succeeds again: while NATS is away
// every check fails, and the connection's own log says so.
func (f *failover) wake(ctx context.Context) {
	woke, err := f.stream.Wake(ctx)
	switch {
	case err != nil && ctx.Err() == nil && !f.wakeFailed:
		f.wakeFailed = true
		f.log.Warn("could not check that a cluster member is active, or wake one up; if none is, one becomes active with the next event. Check that Vigil's NATS user may publish on vigil.events.vigil-admin", "err", err)
	case err != nil:
	case woke:
		f.wakeFailed = false
		f.metrics.Wakes.Inc()
		f.log.Info("no cluster member was active (no events since the last one stopped, or since the start): published a wake-up message so that one takes over", "member", f.cfg.MemberName())
	default:
		f.wakeFailed = false
	}
}

// follow applies, to a standby's engine, what the active member was
// delivered since the last round.
func (f *failover) follow(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isActive() {
		return
	}
	r, err := f.stream.CatchUp(ctx, f.r, f.detector.engine())
	f.r = r
	if err != nil && ctx.Err() == nil {
		f.log.Debug("standby did not catch up this round; retrying", "err", err)
	}
}

// promote makes this member the active one: it catches up with everything
// the previous active member was delivered, takes over the consumer's
// duplicate window, unmutes the engine, starts delivering and announces
// what fires and was not announced yet. Intake is paused meanwhile.
func (f *failover) promote(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := f.clock.Now()
	eng := f.detector.engine()
	before := f.r.Events
	r, err := f.stream.CatchUp(ctx, f.r, eng)
	f.r = r
	if err != nil {
		return fmt.Errorf("catch up with the events stream: %w", err)
	}
	f.stream.TakeReplayed(r)
	f.announceFence.forget()
	f.deliverFence.forget()
	f.active.Store(true)
	eng.SetMuted(false)
	f.notifier.hold(false)
	f.detector.announce(ctx, f.detector.state.Load())
	took := f.clock.Now().Sub(start)
	f.metrics.Active.Set(1)
	f.metrics.Handovers.Inc()
	f.metrics.Takeover.Observe(took.Seconds())
	f.table.SetRole(cluster.RoleActive)
	f.log.Info("this member is now the active one", "member", f.cfg.MemberName(), "caught_up_events", r.Events-before, "took", took)
	return nil
}

// demote makes this member a standby again: the engine is muted, delivery
// stops (attempts in flight finish), and following resumes from what was
// applied live. Intake is paused meanwhile.
func (f *failover) demote() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.isActive() {
		return
	}
	f.active.Store(false)
	f.detector.engine().SetMuted(true)
	f.notifier.hold(true)
	f.r = f.stream.Position(f.r)
	f.metrics.Active.Set(0)
	f.metrics.Demotions.Inc()
	f.table.SetRole(cluster.RoleStandby)
	f.log.Info("this member is a standby now: the pin moved to another member, or it stopped or bound again", "member", f.cfg.MemberName())
}

// swapped records, under f.mu (the caller holds it through swapping),
// that a reload put in force an engine that has applied the stream up to
// r: a standby mutes it and follows from there.
func (f *failover) swapped(r ingest.Replayed) {
	f.r = r
	if f.isActive() {
		f.stream.SkipReplayed(r)
		return
	}
	f.detector.engine().SetMuted(true)
}

// mayAnnounce is the fence before an alert transition leaves the engine:
// only the member JetStream has pinned announces. A member frozen past
// cluster.failover_after (a long GC pause, SIGSTOP) wakes up still
// thinking it is active; the server says otherwise. The answer stands for
// fenceFor. When the server cannot be asked, the transition goes out: the
// outbox's message ids and the alert state's compare-and-set keep a second
// announcement from paging twice.
func (f *failover) mayAnnounce() bool { return f.holdsPin(&f.announceFence) }

// mayDeliver is the same fence before each delivery attempt.
func (f *failover) mayDeliver() bool { return f.holdsPin(&f.deliverFence) }

// fence is the last confirmation of the pin with the server, for one use.
type fence struct {
	mu sync.Mutex
	at time.Time // when the pin was last confirmed with the server
	ok bool
}

func (fc *fence) forget() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.at = time.Time{}
}

// holdsPin answers for fc: its last answer while it stands, or the
// server's.
func (f *failover) holdsPin(fc *fence) bool {
	if !f.isActive() {
		return false
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	now := f.clock.Now()
	if !fc.at.IsZero() && now.Sub(fc.at) < fenceFor && now.After(fc.at) {
		return fc.ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok, err := f.stream.HoldsPin(ctx)
	if err != nil {
		f.log.Warn("could not confirm this member still holds the pin; going on as the active member", "err", err)
		ok = true
	}
	fc.at, fc.ok = now, ok // an error too stands for fenceFor: each check may take 2s
	return ok
}

// progress is the member row's applied sequence and standby lag.
func (f *failover) progress() (applied, lag uint64) {
	f.mu.Lock()
	applied = f.stream.Position(f.r).Last
	f.mu.Unlock()
	// The consumer polls its state every second; no request of our own.
	if d := f.stream.Delivered(); d > applied {
		lag = d - applied
	}
	return applied, lag
}
