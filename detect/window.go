package detect

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// floorDiv divides rounding towards minus infinity, so bucket indexes of
// times before 1970 still line up.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// result is a rule's condition evaluated over one window.
type result struct {
	ok               bool
	value, threshold float64
}

// newestIdx is the newest fine bucket a state holds, or the newest distinct
// entry's bucket; ok is false when the state is empty.
func (s *groupState) newestIdx() (int64, bool) {
	var n int64
	ok := false
	if len(s.fine) > 0 {
		n, ok = s.fine[len(s.fine)-1].idx, true
	}
	if len(s.set) > 0 && (!ok || s.set[0].last > n) {
		n, ok = s.set[0].last, true
	}
	return n, ok
}

// evaluate computes c's condition over the window that ends with fine bucket k.
func (c *compiled) evaluate(s *groupState, k int64) result {
	lo := k - c.nb + 1
	switch c.kind {
	case KindThreshold, KindSequence:
		a, _ := sumRange(s.fine, lo, k)
		return result{ok: a >= uint64(c.count), value: float64(a), threshold: float64(c.count)}
	case KindDistinct:
		n := 0
		for _, e := range s.set {
			if e.last >= lo && e.last <= k {
				n++
			}
		}
		return result{ok: n >= c.count, value: float64(n), threshold: float64(c.count)}
	case KindRatio:
		a, b := sumRange(s.fine, lo, k)
		v := 0.0
		if b > 0 {
			v = float64(a) / float64(b)
		}
		return result{ok: b >= uint64(c.minEvents) && a > 0 && v >= c.ratio, value: v, threshold: c.ratio}
	case KindSpike:
		return c.evaluateSpike(s, k)
	}
	return result{}
}

func (c *compiled) evaluateSpike(s *groupState, k int64) result {
	lo := k - c.nb + 1
	if s.first*c.g > lo*c.g-c.nbb*c.gb {
		// Less than one baseline of history: nothing to compare with.
		return result{}
	}
	a, b := sumRange(s.fine, lo, k)
	// The baseline is the coarse buckets wholly before the window's coarse
	// bucket, plus fine buckets not yet folded into them.
	cw := floorDiv(lo*c.g, c.gb)
	ba, bb := sumRange(s.coarse, cw-c.nbb, cw-1)
	for _, bk := range s.fine {
		if bk.idx >= lo {
			break
		}
		if ci := floorDiv(bk.idx*c.g, c.gb); ci >= cw-c.nbb && ci < cw {
			ba += uint64(bk.a)
			bb += uint64(bk.b)
		}
	}
	if c.of == nil {
		scaled := float64(ba) * float64(c.nb*c.g) / float64(c.nbb*c.gb)
		thr := max(c.factor*scaled, c.minValue)
		v := float64(a)
		return result{ok: a >= uint64(c.minEvents) && v > 0 && v >= thr, value: v, threshold: thr}
	}
	base := 0.0
	if bb >= uint64(c.minEvents) {
		base = float64(ba) / float64(bb)
	}
	thr := max(c.factor*base, c.minValue)
	v := 0.0
	if b > 0 {
		v = float64(a) / float64(b)
	}
	return result{ok: b >= uint64(c.minEvents) && a > 0 && v >= thr, value: v, threshold: thr}
}

// prune drops what can no longer matter once the newest bucket is kh: fine
// buckets before the window (folded into the coarse baseline for spikes),
// coarse buckets before the baseline and distinct values not seen in the
// window.
func (c *compiled) prune(s *groupState, kh int64) {
	lo := kh - c.nb + 1
	i := 0
	for i < len(s.fine) && s.fine[i].idx < lo {
		if c.kind == KindSpike {
			bk := s.fine[i]
			s.coarse = addBucket(s.coarse, floorDiv(bk.idx*c.g, c.gb), bk.a, bk.b)
		}
		i++
	}
	if i > 0 {
		s.fine = append(s.fine[:0], s.fine[i:]...)
	}
	if c.kind == KindSpike {
		cmin := floorDiv(lo*c.g, c.gb) - c.nbb
		j := 0
		for j < len(s.coarse) && s.coarse[j].idx < cmin {
			j++
		}
		if j > 0 {
			s.coarse = append(s.coarse[:0], s.coarse[j:]...)
		}
	}
	if c.kind == KindDistinct {
		s.set = slices.DeleteFunc(s.set, func(e setEntry) bool { return e.last < lo })
	}
}

// addDistinct records value v seen in bucket k, keeping the set ordered
// newest first and at most c.setCap entries (the oldest goes first).
func (c *compiled) addDistinct(s *groupState, v []byte, k int64) {
	h := uint32(xxhash.Sum64(v))
	for i, e := range s.set {
		if e.hash == h {
			if k > e.last {
				s.set[i].last = k
			}
			c.sortSet(s)
			return
		}
	}
	if len(s.set) >= c.setCap {
		s.set = s.set[:c.setCap-1]
	}
	s.set = append(s.set, setEntry{hash: h, last: k})
	c.sortSet(s)
}

func (c *compiled) sortSet(s *groupState) {
	slices.SortStableFunc(s.set, func(x, y setEntry) int {
		switch {
		case x.last > y.last:
			return -1
		case x.last < y.last:
			return 1
		}
		return 0
	})
}
