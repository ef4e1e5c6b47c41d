package detect

import (
	"math"
	"slices"
)

// Baselines. A baseline check compares an aggregate (a count, a distinct
// count, a share, a percentile) with its own history for the group. The
// history is the same aggregate over the same window, sampled at the end
// of every sample interval (a sixtieth of the period, at least a minute),
// kept for one period before the current window. The baseline is the
// median of those samples and its spread their median absolute deviation
// (scaled by 1.4826, so it estimates a standard deviation). A value is
// unusual when it is at least factor times the median and at least
//
//	median + z·spread, with z = 3·sqrt(samples in a full period / samples seen)
//
// so that a group with only a quarter of its period of history needs twice
// the margin. Where the group sees few events, counting noise replaces the
// spread when it is larger (a count of median m varies by about sqrt(m),
// a share p over b events by sqrt(p(1-p)/b)): three errors among three
// hundred requests are not yet a spike over a baseline of one in a
// thousand. Median and MAD suit bursty API traffic: a past burst, an
// earlier attack or a deploy blip moves a mean (or an EWMA) for a long
// time, but moves a median only once it lasts half the period. Samples of
// counts include the zeros of quiet intervals; shares and percentiles are
// sampled only when the window held events.

// baseCache is a series' baseline for one evaluation range, kept until the
// range moves (once per sample interval) or a sample is added.
type baseCache struct {
	valid          bool
	cMax           int64 // newest sample used
	nSamples       int   // len(series.samples) when computed
	n              int   // samples used
	median, spread float64
}

// threshold is the least unusual value: factor times the median, and the
// median plus z spreads, z growing as history shrinks. The spread is the
// history's, or, when larger, noise: what counting alone makes the value
// vary by (see countingNoise).
func (bc baseCache) threshold(factor float64, full int64, noise float64) float64 {
	z := bc.z(full)
	return max(factor*bc.median, bc.median+z*max(bc.spread, noise))
}

// z is how many spreads above the median a value must be: 3, more while
// the history is short.
func (bc baseCache) z(full int64) float64 { return 3 * math.Sqrt(float64(full)/float64(bc.n)) }

// sliceThreshold is threshold for one slice of a window whose every slice
// must hold: the slices are independent chances, so each needs half the
// margin above its counting noise that one window would, while all of them
// holding by chance stays as unlikely.
func (bc baseCache) sliceThreshold(factor float64, full int64, noise float64) float64 {
	return max(bc.threshold(factor, full, 0), bc.median+bc.z(full)/2*noise)
}

// baselineAt returns the baseline for the window that ends with bucket k:
// the samples of windows that ended before it starts, within one period.
func (tr *track) baselineAt(ref *baseRef, sr *series, k int64, scratch *[]float64) baseCache {
	cMax := floorDiv((k-tr.nb+1)*tr.g, ref.cb) - 1
	if sr.cache.valid && sr.cache.cMax == cMax && sr.cache.nSamples == len(sr.samples) {
		return sr.cache
	}
	vals := (*scratch)[:0]
	for _, x := range sr.samples {
		if x.c > cMax-ref.n && x.c <= cMax {
			vals = append(vals, float64(x.v))
		}
	}
	bc := baseCache{valid: true, cMax: cMax, nSamples: len(sr.samples), n: len(vals)}
	if len(vals) > 0 {
		slices.Sort(vals)
		bc.median = median(vals)
		for i := range vals {
			vals[i] = math.Abs(vals[i] - bc.median)
		}
		slices.Sort(vals)
		bc.spread = 1.4826 * median(vals)
	}
	*scratch = vals
	sr.cache = bc
	return bc
}

// median of sorted values.
func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// sampleAt records, for each baseline check of tr, the value of the windows
// that ended at the sample boundaries passed since its last sample. It runs
// before the event in bucket k is added, so each sample sees only what came
// before its boundary.
func (tr *track) sampleAt(s *groupState, k int64, sk *sketchCodec) {
	for i := range tr.checks {
		ch := &tr.checks[i]
		if ch.base == nil {
			continue
		}
		ref := ch.base
		sr := &s.series[ref.series]
		cNow := floorDiv(k*tr.g, ref.cb)
		if cNow-1 <= sr.sampled {
			continue
		}
		from := max(sr.sampled+1, cNow-ref.n-1, floorDiv(s.first*tr.g, ref.cb))
		for c := from; c < cNow; c++ {
			kEnd := (c+1)*ref.cb/tr.g - 1
			sm := tr.summarize(s, kEnd-tr.nb+1, kEnd, sk)
			if v, ok := tr.value(ch.agg, sm); ok {
				sr.samples = append(sr.samples, baseSample{c: c, v: float32(v)})
			}
		}
		sr.sampled = cNow - 1
		// Forget what no baseline can use any more.
		keep := cNow - ref.n - (tr.nb*tr.g)/ref.cb - 2
		j := 0
		for j < len(sr.samples) && sr.samples[j].c < keep {
			j++
		}
		if j > 0 {
			sr.samples = append(sr.samples[:0], sr.samples[j:]...)
		}
	}
}

// initSeries gives a group seen for the first time at bucket k its empty
// baseline series.
func (tr *track) initSeries(s *groupState, k int64) {
	for len(s.series) < tr.nSeries {
		s.series = append(s.series, series{})
	}
	for i := range tr.checks {
		if ref := tr.checks[i].base; ref != nil {
			s.series[ref.series] = series{sampled: floorDiv(k*tr.g, ref.cb) - 1}
		}
	}
}
