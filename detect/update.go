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

// newestIdx is the newest fine bucket a state holds, or the newest distinct
// entry's bucket; ok is false when the state holds neither.
func (s *groupState) newestIdx() (int64, bool) {
	var n int64
	ok := false
	if len(s.fine) > 0 {
		n, ok = s.fine[len(s.fine)-1].idx, true
	}
	for _, d := range []*dset{&s.set, &s.ofset} {
		if b, has := d.newest(); has && (!ok || b > n) {
			n, ok = b, true
		}
	}
	if len(s.sketches) > 0 && (!ok || s.sketches[len(s.sketches)-1].idx > n) {
		n, ok = s.sketches[len(s.sketches)-1].idx, true
	}
	return n, ok
}

// empty reports whether the state was never written.
func (s *groupState) empty() bool {
	return s.first == 0 && len(s.fine) == 0 && s.set.empty() && s.ofset.empty() && len(s.fresh) == 0 &&
		len(s.known) == 0 && len(s.series) == 0 && len(s.sketches) == 0
}

// prune drops what can no longer matter once the newest bucket is kh:
// buckets, sketches and distinct values before the window. Baseline samples
// are trimmed when they are taken.
func (tr *track) prune(s *groupState, kh int64) {
	lo := kh - tr.nb + 1
	i := 0
	for i < len(s.fine) && s.fine[i].idx < lo {
		s.totA -= uint64(s.fine[i].a)
		s.totB -= uint64(s.fine[i].b)
		i++
	}
	if i > 0 {
		s.fine = append(s.fine[:0], s.fine[i:]...)
	}
	j := 0
	for j < len(s.sketches) && s.sketches[j].idx < lo {
		j++
	}
	if j > 0 {
		clear(s.sketches[:j])
		s.sketches = append(s.sketches[:0], s.sketches[j:]...)
	}
	if tr.hasDistinct {
		s.set.prune(lo)
	}
	if tr.ofCap > 0 {
		s.ofset.prune(lo)
		if s.ofset.len() == 0 && s.set.len() == 0 {
			s.shift = 0 // nothing left to sample: count exactly again
		}
	}
}

// hashValue is the 32-bit hash distinct and sequence sets keep of a value.
func hashValue(v []byte) uint32 { return uint32(xxhash.Sum64(v)) }

// addToSet records value hash h seen in bucket k in a set ordered newest
// first, keeping at most limit entries (the oldest goes first).
func addToSet(set []setEntry, h uint32, k int64, limit int) []setEntry {
	i := slices.IndexFunc(set, func(e setEntry) bool { return e.hash == h })
	switch {
	case i >= 0 && k <= set[i].last:
		return set
	case i >= 0:
		set = slices.Delete(set, i, i+1)
	case len(set) >= limit:
		set = set[:limit-1]
	}
	// Keep the set newest first: an entry goes before the first one seen
	// no later than it (the front, for an event in the newest bucket).
	j := slices.IndexFunc(set, func(e setEntry) bool { return e.last <= k })
	if j < 0 {
		j = len(set)
	}
	return slices.Insert(set, j, setEntry{hash: h, last: k})
}

// inSet reports whether set holds h seen at or after bucket since.
func inSet(set []setEntry, h uint32, since int64) bool {
	for _, e := range set {
		if e.hash == h && e.last >= since {
			return true
		}
	}
	return false
}

// pruneSet drops entries last seen before bucket lo.
func pruneSet(set []setEntry, lo int64) []setEntry {
	return slices.DeleteFunc(set, func(e setEntry) bool { return e.last < lo })
}

// addShared records value hash h seen in bucket k for a distinct_share
// condition: among the `of` events' values, and among the matching ones
// when mt. Where the sets would outgrow their caps (a login endpoint that
// thousands of networks try within the window), it samples them instead of
// forgetting their oldest values, which would count a shorter window in
// one set than in the other and skew the share: both keep only the values
// whose hash's low shift bits are zero, and shift grows by one (halving
// the sample) whenever a set is full.
func (s *groupState) addShared(h uint32, k int64, mt bool, tr *track) {
	for (s.ofset.len() >= tr.ofCap || s.set.len() >= tr.setCap) && s.shift < maxShift {
		s.shift++
		mask := uint32(1)<<s.shift - 1
		s.set.keep(mask)
		s.ofset.keep(mask)
	}
	if h&(uint32(1)<<s.shift-1) != 0 {
		return
	}
	if mt {
		s.set.add(h, k, tr.setCap)
	}
	s.ofset.add(h, k, tr.ofCap)
}
