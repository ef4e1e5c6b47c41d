package detect

import (
	"math"
	"time"
)

// A track is one condition of a rule, compiled: its window geometry, its
// checks and where their state lives. Every rule kind compiles to tracks
// (see compile.go); a group has one state value per track.

type aggKind uint8

const (
	aggCount aggKind = iota
	aggRate
	aggEvents
	aggShare
	aggDistinct
	aggPercentile
	aggDistinctShare
)

const maxChecks = 7

// maxTrim bounds the buckets a trim leaves out (half a window of 60).
const maxTrim = 31

type check struct {
	name           string
	agg            aggKind
	min, max       float64
	hasMin, hasMax bool
	base           *baseRef
}

// baseRef is where a baseline check's history lives and how it is judged.
type baseRef struct {
	series     int     // index into groupState.series
	factor     float64 // the value must be at least factor times the median
	cb         int64   // sample interval, ns, a multiple of the track's g
	n          int64   // samples in the period
	minSamples int64   // samples needed before the check can hold
}

type track struct {
	name      string
	match     *predicate // narrows the rule's match (nil: no narrowing)
	window    time.Duration
	g, nb     int64 // fine bucket width (ns) and buckets in the window
	slices    int64
	sliceHold int64 // slices that must hold
	trim      int64 // fine buckets shares leave out (the busiest)
	sb        int64 // fine buckets per slice
	// sliceMinB is the least number of denominator events a slice needs
	// for its share to count.
	sliceMinB uint64
	checks    []check

	distinct    field
	hasDistinct bool
	setCap      int
	ofCap       int // distinct_share: values kept among `of` events (0: none)
	pctField    string
	quantile    float64 // 0..1
	hasPct      bool

	needA   bool // count, rate or share checks: count matching events
	needB   bool // share or events checks: count the denominator
	nSeries int
	// minB is the least denominator the condition needs (its events check
	// minimum), for the in-place denominator path.
	minB uint64
	// denomFast reports that an event counting only in the denominator can
	// be applied in place: it cannot make the condition start holding
	// except by bringing the denominator to minB.
	denomFast bool
}

// geometry fixes the bucket widths: about 60 buckets per window (12 for a
// percentile, whose buckets each hold a sketch), at least 1 s. The window
// holds ceil(W/g)+1 buckets, so every event within W of the evaluation
// time counts, and events up to g older may count too.
func (tr *track) geometry() {
	w := int64(tr.window)
	per := int64(60)
	if tr.hasPct {
		per = 12
	}
	tr.g = max(w/per, int64(time.Second))
	if tr.slices > 1 {
		// Slices of whole buckets: round g down so the window splits evenly.
		n := (w + tr.g - 1) / tr.g
		n = max(n/tr.slices*tr.slices, tr.slices)
		tr.g = max(w/n, int64(time.Second))
		tr.sb = max((w+tr.g-1)/tr.g/tr.slices, 1)
	}
	tr.nb = (w+tr.g-1)/tr.g + 1
}

// baseline fixes a baseline check's sampling: 60 samples per period, at
// least a minute apart, on multiples of g.
func (tr *track) baseline(b *BaselineSpec, seriesIdx int) *baseRef {
	p := int64(b.period())
	cb := max(p/samplesPerPeriod, int64(minSampleInterval))
	cb = (cb + tr.g - 1) / tr.g * tr.g
	return &baseRef{
		series: seriesIdx, factor: b.Factor, cb: cb,
		n:          max((p+cb-1)/cb, 1),
		minSamples: (int64(b.minHistory()) + cb - 1) / cb,
	}
}

// horizon is how long after a group's last event its state can matter.
func (tr *track) horizon() time.Duration {
	h := tr.nb * tr.g
	for _, ch := range tr.checks {
		if ch.base != nil {
			h = max(h, tr.nb*tr.g+(ch.base.n+1)*ch.base.cb)
		}
	}
	return time.Duration(h)
}

// result is a condition evaluated over one window.
type result struct {
	ok               bool
	value, threshold float64 // of the first check
	track            int
	vals             [maxChecks]float64
}

// summary is what one window of a state holds.
type summary struct {
	a, b       uint64
	ta, tb     uint64 // a and b without the trimmed buckets (trim only)
	distinct   int
	ofDistinct int
	pct        float64
	pctOK      bool
}

// summarize sums the state over fine buckets lo..hi.
func (tr *track) summarize(s *groupState, lo, hi int64, sk *sketchCodec) summary {
	var sm summary
	sm.a, sm.b = s.sums(lo, hi)
	if tr.trim > 0 {
		sm.ta, sm.tb = trimmed(s.fine, lo, hi, tr.trim, sm.a, sm.b)
	}
	if tr.hasDistinct {
		sm.distinct = s.set.count(lo, hi)
	}
	if tr.ofCap > 0 {
		// Sampled sets (see addShared) estimate the counts.
		sm.distinct <<= s.shift
		sm.ofDistinct = s.ofset.count(lo, hi) << s.shift
	}
	if tr.hasPct {
		sm.pct, sm.pctOK = sk.quantile(s.sketches, lo, hi, tr.quantile)
	}
	return sm
}

// value is an aggregate of a window summary; ok is false when it is not
// defined (a share without events, a percentile without values).
func (tr *track) value(agg aggKind, sm summary) (float64, bool) {
	switch agg {
	case aggCount:
		return float64(sm.a), true
	case aggRate:
		return float64(sm.a) / tr.window.Seconds(), true
	case aggEvents:
		return float64(sm.b), true
	case aggShare:
		a, b := sm.a, sm.b
		if tr.trim > 0 {
			a, b = sm.ta, sm.tb
		}
		if b == 0 {
			return 0, false
		}
		return float64(a) / float64(b), true
	case aggDistinct:
		return float64(sm.distinct), true
	case aggDistinctShare:
		if sm.ofDistinct == 0 {
			return 0, false
		}
		return min(float64(sm.distinct)/float64(sm.ofDistinct), 1), true
	case aggPercentile:
		return sm.pct, sm.pctOK
	}
	return 0, false
}

// evaluate computes the condition over the window that ends with fine
// bucket k. Baseline checks read the cached baseline, which sampleAt keeps.
func (tr *track) evaluate(s *groupState, k int64, sk *sketchCodec, scratch *[]float64) result {
	// Baseline checks come first: without enough history, nothing to sum.
	if ch := &tr.checks[0]; ch.base != nil {
		if _, ready := tr.threshold(ch, s, k, summary{}, scratch); !ready {
			return result{}
		}
	}
	lo := k - tr.nb + 1
	sm := tr.summarize(s, lo, k, sk)
	res := result{ok: true}
	for i := range tr.checks {
		ch := &tr.checks[i]
		v, def := tr.value(ch.agg, sm)
		thr, ready := tr.threshold(ch, s, k, sm, scratch)
		if i == 0 {
			res.value, res.threshold = v, thr
			if !ch.hasMin && ch.base == nil {
				res.threshold = ch.max
			}
		}
		res.vals[i] = v
		holds := def && ready && (!ch.hasMax || v <= ch.max) && v >= thr && (ch.base == nil || v > 0)
		if holds && tr.slices > 1 && (ch.agg == aggShare || ch.agg == aggPercentile) {
			holds = tr.slicesHold(s, k, ch, thr, sk, scratch)
		}
		if !holds {
			res.ok = false
			return res
		}
	}
	return res
}

// slicesHold reports whether a share or percentile is at least its
// threshold in sliceHold of the slices of the window ending with bucket k:
// thr, or for a baseline check the threshold with the slice's own counting
// noise (a slice holds fewer events than the window, so chance moves it
// more). A slice with too few events does not hold.
func (tr *track) slicesHold(s *groupState, k int64, ch *check, thr float64, sk *sketchCodec, scratch *[]float64) bool {
	var bc baseCache
	if ch.base != nil {
		bc = tr.baselineAt(ch.base, &s.series[ch.base.series], k, scratch)
	}
	held := int64(0)
	for j := range tr.slices {
		if held+tr.slices-j < tr.sliceHold {
			return false // too few slices left to hold
		}
		hi := k - j*tr.sb
		sm := tr.summarize(s, hi-tr.sb+1, hi, sk)
		if ch.agg == aggShare && sm.b < tr.sliceMinB {
			continue
		}
		st := thr
		if ch.base != nil {
			st = max(thr, bc.sliceThreshold(ch.base.factor, ch.base.n, countingNoise(ch.agg, bc.median, sm)))
		}
		if v, ok := tr.value(ch.agg, sm); ok && v >= st {
			if held++; held >= tr.sliceHold {
				return true
			}
		}
	}
	return false
}

// threshold is what a check's value is compared with at bucket k: its
// minimum, or for a baseline check the larger of the minimum and what the
// baseline makes unusual. ready is false while the group lacks history.
func (tr *track) threshold(ch *check, s *groupState, k int64, sm summary, scratch *[]float64) (thr float64, ready bool) {
	if ch.hasMin {
		thr = ch.min
	} else if ch.hasMax && ch.base == nil {
		thr = math.Inf(-1)
	}
	if ch.base == nil {
		return thr, true
	}
	bc := tr.baselineAt(ch.base, &s.series[ch.base.series], k, scratch)
	if int64(bc.n) < ch.base.minSamples || bc.n == 0 {
		return thr, false
	}
	return max(thr, bc.threshold(ch.base.factor, ch.base.n, countingNoise(ch.agg, bc.median, sm))), true
}

// countingNoise is the standard deviation a value of the aggregate would
// have by chance alone at the baseline's median, when the value counts
// events: a count or distinct count of median m varies by about sqrt(m)
// (Poisson), a share of median p over n events by sqrt(p(1-p)/n). A median
// of zero is taken as one event in the window (a share of 1/n): "never
// seen" in a short history is not "impossible". Where a group sees few
// events this is larger than the spread its history shows, and it keeps a
// handful of errors from looking like a spike.
func countingNoise(agg aggKind, m float64, sm summary) float64 {
	share := func(n uint64) float64 {
		if n == 0 {
			return 0
		}
		p := max(m, 1/float64(n))
		return math.Sqrt(p * (1 - min(p, 1)) / float64(n))
	}
	switch agg {
	case aggCount, aggDistinct, aggEvents:
		return math.Sqrt(max(m, 1))
	case aggShare:
		if sm.tb > 0 && sm.tb < sm.b {
			return share(sm.tb) // trimmed: the events the share counts
		}
		return share(sm.b)
	case aggDistinctShare:
		return share(uint64(sm.ofDistinct))
	}
	return 0
}

// trimmed returns the sums a and b of buckets lo..hi without the n buckets
// holding the most matching events among those where at least half the
// events match: the moments of a blip, when (nearly) every request fails.
// Buckets of scattered errors, even many, are kept.
func trimmed(bs []bucket, lo, hi, n int64, a, b uint64) (uint64, uint64) {
	var top [maxTrim]bucket
	k := 0
	for _, bk := range bs {
		if bk.idx < lo || bk.idx > hi || bk.a == 0 || 2*uint64(bk.a) < uint64(bk.b) {
			continue
		}
		// Keep the n busiest seen so far, smallest last.
		i := k
		if k < int(n) {
			k++
		} else if bk.a <= top[k-1].a {
			continue
		} else {
			i = k - 1
		}
		for i > 0 && top[i-1].a < bk.a {
			top[i] = top[i-1]
			i--
		}
		top[i] = bk
	}
	for _, bk := range top[:k] {
		a -= uint64(bk.a)
		b -= uint64(bk.b)
	}
	return a, b
}
