package detect

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
)

// Options configure an Engine.
type Options struct {
	// StateMemory is the window-state budget in bytes (default 256 MiB,
	// at least MinStateMemory).
	StateMemory int
	// Lateness is how far behind the newest event time an event may arrive
	// and still be counted.
	Lateness time.Duration
	// Live makes the watermark also advance with the wall clock (Now), so
	// alerts resolve when traffic stops; replay leaves it false.
	Live bool
	// Now is the wall clock for live mode (default time.Now).
	Now func() time.Time
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
	// Registerer, when set, receives the engine's metrics. Close unregisters
	// them, so close the old engine before registering a new one.
	Registerer prometheus.Registerer
	// Emit receives every alert transition, synchronously and in a
	// deterministic order, with the engine's lock held: it must not call
	// back into the Engine.
	Emit func(Alert)
	// MaxFiring bounds the firing alerts held in memory (default 10000);
	// past it new alerts are dropped and counted.
	MaxFiring int
	// Label, when set, rewrites each label value of a new alert (for
	// example to pseudonymise addresses and user names) before its
	// fingerprint and templates are computed, so that every alert the
	// engine emits or reports (Emit, Firing) carries only rewritten values.
	// It is called with the engine's lock held and must not call back.
	Label func(name, value string) string
	// PrefixV4 and PrefixV6 are the network sizes of the derived field
	// source_prefix (default 24 and 64).
	PrefixV4, PrefixV6 int
	// Incidents configures the correlation of alerts into incidents.
	Incidents IncidentOptions
	// TempDir holds the files Snapshot and Restore go through (about the
	// size of a snapshot); empty means the system's (TMPDIR).
	TempDir string
}

const defaultMaxFiring = 10000

// Engine applies rules to events on event time. Its methods are safe for
// concurrent use.
type Engine struct {
	mu    sync.Mutex
	rules []*Rule
	opts  Options
	cache *fastcache.Cache
	log   *slog.Logger

	hot                                                      *hotSet
	ctx                                                      evalCtx
	cfg                                                      derivedConfig
	sk                                                       *sketchCodec
	incidents                                                *correlator
	rst, kst                                                 ruleState
	seen                                                     *seenTable
	present                                                  []*presence // by rule
	keyBuf, valBuf, outBuf, vBuf, nvBuf, scanKey, inhibitKey []byte
	seqSample                                                [][]byte
	scratch                                                  []float64
	evicted                                                  []*hotEntry

	newest, wm       int64 // ns; valid when hasTime
	hasTime          bool
	nextDue          int64 // watermark at which firing alerts need a check
	horizon          int64 // longest state horizon plus resolve_after, ns
	evalOrder        []int // rule indexes in evaluation order (evaluationOrder)
	firing           map[string]*firingAlert
	order            []*firingAlert // firing alerts in the order they fired
	muted            bool
	closed           bool
	counts           counters
	metrics          *collector
	stateCapacityMax uint64
}

// counters are the engine's metric values, kept as plain integers under the
// engine's lock and read by the collector.
type counters struct {
	late, dropped uint64
	rules         []ruleCounters
}

type ruleCounters struct {
	evaluations, matches, inhibited uint64
	alerts                          [3]uint64 // by transitionIndex
	firing                          int
}

// New returns an engine running rules. Rule names must be unique; rules that
// have not been compiled are compiled here.
func New(rules []*Rule, opts Options) (*Engine, error) {
	if err := checkRules(rules); err != nil {
		return nil, err
	}
	if opts.StateMemory == 0 {
		opts.StateMemory = int(DefaultConfig().StateMemory)
	}
	if opts.StateMemory < MinStateMemory {
		return nil, fmt.Errorf("state memory %d bytes is below the minimum of %d", opts.StateMemory, MinStateMemory)
	}
	if opts.Lateness < 0 {
		return nil, errors.New("lateness must not be negative")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxFiring <= 0 {
		opts.MaxFiring = defaultMaxFiring
	}
	if opts.PrefixV4 == 0 {
		opts.PrefixV4 = defaultPrefixV4
	}
	if opts.PrefixV6 == 0 {
		opts.PrefixV6 = defaultPrefixV6
	}
	if opts.PrefixV4 < 8 || opts.PrefixV4 > 32 || opts.PrefixV6 < 16 || opts.PrefixV6 > 128 {
		return nil, fmt.Errorf("source_prefix sizes /%d and /%d: set IPv4 between 8 and 32, IPv6 between 16 and 128", opts.PrefixV4, opts.PrefixV6)
	}
	hotBudget, cacheBudget := splitBudget(opts.StateMemory)
	e := &Engine{
		rules:     rules,
		opts:      opts,
		cache:     fastcache.New(cacheBudget),
		hot:       newHotSet(hotBudget),
		log:       opts.Logger,
		firing:    make(map[string]*firingAlert),
		nextDue:   math.MaxInt64,
		sk:        newSketchCodec(),
		incidents: newCorrelator(opts.Incidents),
		seen:      &seenTable{},
	}
	e.cfg = derivedConfig{v4Bits: opts.PrefixV4, v6Bits: opts.PrefixV6, lists: &listSet{}}
	if len(rules) > 0 {
		e.cfg.lists = rules[0].c.lists
	}
	e.ctx.cfg = &e.cfg
	e.ctx.memo = make([]memoEntry, len(e.cfg.lists.memo))
	e.counts.rules = make([]ruleCounters, len(rules))
	e.evalOrder = evaluationOrder(rules)
	for _, r := range rules {
		e.horizon = max(e.horizon, int64(r.c.horizon()+r.c.resolveAfter))
	}
	e.present = make([]*presence, len(rules))
	for i, r := range rules {
		if (r.c.lazyStart && r.c.hasOf || r.c.kind == KindSequence) && !r.c.alwaysHot {
			period := int64(0)
			for _, tr := range r.c.tracks {
				period = max(period, tr.nb*tr.g)
			}
			e.present[i] = newPresence(period)
		}
	}
	var s fastcache.Stats
	e.cache.UpdateStats(&s)
	e.stateCapacityMax = uint64(opts.StateMemory)
	if opts.Registerer != nil {
		e.metrics = newCollector(e)
		if err := opts.Registerer.Register(e.metrics); err != nil {
			return nil, fmt.Errorf("register detect metrics: %w", err)
		}
	}
	return e, nil
}

// splitBudget divides the state budget: an eighth (at most 32 MiB) for the
// hot set, and of the rest a quarter for fastcache's data. The other three
// quarters are headroom for fastcache's index: Go maps with an entry per
// stored value, including values already overwritten in its ring until the
// ring wraps (up to twice the live groups), at about 46 bytes per entry in
// memory. With the smallest groups (about 43 bytes of data each) the index
// takes two to three times the data. BenchmarkStateMemory in rules/
// measures the total against the budget.
func splitBudget(total int) (hot, cache int) {
	hot = min(total/8, maxHotBudget)
	return hot, (total - hot) / 4
}

func checkRules(rules []*Rule) error {
	if len(rules) > math.MaxUint16 {
		return fmt.Errorf("%d rules is too many", len(rules))
	}
	seen := make(map[string]bool, len(rules))
	var errs []error
	for _, r := range rules {
		if err := r.Compile(); err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.Name, err))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("rule %q is defined twice; rule names must be unique", r.Name))
		}
		seen[r.Name] = true
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return linkInhibitors(rules)
}

// linkInhibitors resolves every rule's inhibited_by names to rule indexes.
func linkInhibitors(rules []*Rule) error {
	index := make(map[string]int, len(rules))
	for i, r := range rules {
		index[r.Name] = i
	}
	var errs []error
	for _, r := range rules {
		link := func(key string, names []string) []int {
			var out []int
			for _, name := range names {
				j, ok := index[name]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("rule %q: %s names %q, which is not loaded", r.Name, key, name))
				case rules[j] == r:
					errs = append(errs, fmt.Errorf("rule %q: %s cannot name the rule itself", r.Name, key))
				default:
					out = append(out, j)
				}
			}
			return out
		}
		r.c.inhibitors = link("inhibited_by", r.InhibitedBy)
		r.c.excluders = link("unless_firing", r.UnlessFiring)
	}
	return errors.Join(errs...)
}

// evaluationOrder lists rule indexes so that every rule comes after the
// rules it names in inhibited_by and unless_firing: an event that makes both
// a rule and its inhibitor hold raises the inhibitor's alert first, and the
// inhibited rule then sees it firing, whatever order the files list them in.
// Otherwise rules keep their loaded order; rules in a cycle of such names
// keep it too, after the others.
func evaluationOrder(rules []*Rule) []int {
	waits := make([]int, len(rules))
	after := make([][]int, len(rules))
	for i, r := range rules {
		for _, j := range slices.Concat(r.c.inhibitors, r.c.excluders) {
			waits[i]++
			after[j] = append(after[j], i)
		}
	}
	order := make([]int, 0, len(rules))
	done := make([]bool, len(rules))
	for progress := true; progress; {
		progress = false
		for i := range rules {
			if done[i] || waits[i] > 0 {
				continue
			}
			done[i], progress = true, true
			order = append(order, i)
			for _, k := range after[i] {
				waits[k]--
			}
			break
		}
	}
	for i := range rules {
		if !done[i] {
			order = append(order, i)
		}
	}
	return order
}

// Rules returns the engine's rules.
func (e *Engine) Rules() []*Rule { return e.rules }

// SetMuted turns the emission of transitions off or on. While muted the
// engine still tracks windows and alert state, but calls no Emit and counts
// no vigil_alerts_total; a daemon uses it while it rebuilds windows by
// replaying its stream after a restart, then compares Firing with what it had
// announced.
func (e *Engine) SetMuted(muted bool) {
	e.mu.Lock()
	e.muted = muted
	e.mu.Unlock()
}

// Process applies one valid event. ev is not retained; it may be reused as
// soon as Process returns. Events older than the watermark are counted as
// late and ignored.
func (e *Engine) Process(ev *event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	t := ev.Time.UnixNano()
	// A publisher whose clock runs ahead must not drag the watermark: event
	// time counts for the watermark no later than when the event arrived.
	// The arrival is the message's stored time when ingest knows it, so that
	// a rebuild from the stream after a restart moves the watermark exactly
	// as live processing did; else, live, the wall clock. The wall clock
	// itself moves the watermark only through Tick, which the daemon calls
	// once it has caught up with the stream, so that a backlog (after a
	// restart or an outage) is judged on event time.
	switch {
	case !ev.Received.IsZero():
		t = min(t, ev.Received.UnixNano())
	case e.opts.Live:
		t = min(t, e.opts.Now().UnixNano())
	}
	if e.hasTime && ev.Time.UnixNano() < e.wm {
		e.counts.late++
		return
	}
	if !e.hasTime || t > e.newest {
		e.newest = t
	}
	e.advance(e.newest - int64(e.opts.Lateness))
	e.ctx.reset(ev)
	for _, i := range e.evalOrder {
		e.apply(i)
	}
	e.ctx.release()
}

// advance moves the watermark forward to w (never back) and checks firing
// alerts that have become due.
func (e *Engine) advance(w int64) {
	if e.hasTime && w <= e.wm {
		return
	}
	if !e.hasTime {
		e.newest = w + int64(e.opts.Lateness)
	}
	e.wm, e.hasTime = w, true
	if w >= e.nextDue {
		e.check()
	}
}

// Tick advances the watermark with the wall clock in live mode (now minus
// lateness) and resolves or repeats alerts that are due. The daemon calls it
// about once a second; it does nothing unless Options.Live is set.
func (e *Engine) Tick(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.opts.Live || e.closed {
		return
	}
	e.advance(now.UnixNano() - int64(e.opts.Lateness))
}

// Flush ends the input: it moves the watermark past the newest event by the
// longest rule horizon (window, baseline and resolve_after), so every firing
// alert resolves. Replay calls it at end of input.
func (e *Engine) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hasTime || e.closed {
		return
	}
	e.advance(e.newest + e.horizon + int64(time.Second))
}

// Watermark returns the current watermark (zero before the first event).
func (e *Engine) Watermark() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hasTime {
		return time.Time{}
	}
	return time.Unix(0, e.wm).UTC()
}

// Close releases the window state and unregisters the metrics. Later calls
// to Process, Tick and Flush do nothing.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	if e.metrics != nil {
		e.opts.Registerer.Unregister(e.metrics)
	}
	e.cache.Reset()
	e.hot = newHotSet(0)
}
