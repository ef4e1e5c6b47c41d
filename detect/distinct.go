package detect

import (
	"maps"
	"slices"
)

// Distinct values. A condition's distinct check keeps, per group, the
// values seen (as 32-bit hashes) with the bucket of their latest event. A
// small set (a check bounded below bigSetAt, as for an address or a user)
// is a slice ordered newest first. A large one, which only a population
// needs (the failing addresses of a login endpoint during a botnet
// attack, thousands of them), is a map from hash to bucket plus the number
// of values whose latest event is in each bucket: an event then costs a
// map update, and counting a window sums its buckets, whatever the number
// of values. Its encoded form is the same list of entries.

const bigSetAt = 128

type bigSet struct {
	last map[uint32]int64
	per  []bucket // ascending by idx; a counts the values last seen in idx
}

func (tr *track) isBig() bool { return tr.setCap > bigSetAt }

// addDistinct records value hash h seen in bucket k.
func (tr *track) addDistinct(st *groupState, h uint32, k int64) {
	if !tr.isBig() {
		st.set = addToSet(st.set, h, k, tr.setCap)
		return
	}
	if st.big == nil {
		st.big = &bigSet{last: make(map[uint32]int64)}
	}
	b := st.big
	old, seen := b.last[h]
	switch {
	case seen && k <= old:
		return
	case seen:
		b.add(old, -1)
	case len(b.last) >= tr.setCap:
		b.evictOldest()
	}
	b.last[h] = k
	b.add(k, 1)
}

// add changes the count of values last seen in bucket idx by d.
func (b *bigSet) add(idx int64, d int) {
	i := len(b.per)
	for i > 0 && b.per[i-1].idx > idx {
		i--
	}
	if i > 0 && b.per[i-1].idx == idx {
		b.per[i-1].a = uint32(int(b.per[i-1].a) + d)
		if b.per[i-1].a == 0 {
			b.per = slices.Delete(b.per, i-1, i)
		}
		return
	}
	if d > 0 {
		b.per = slices.Insert(b.per, i, bucket{idx: idx, a: uint32(d)})
	}
}

// evictOldest forgets the values of the oldest bucket.
func (b *bigSet) evictOldest() {
	if len(b.per) == 0 {
		return
	}
	b.dropBefore(b.per[0].idx + 1)
}

// dropBefore forgets the values last seen before bucket lo.
func (b *bigSet) dropBefore(lo int64) {
	if len(b.per) == 0 || b.per[0].idx >= lo {
		return
	}
	i := 0
	for i < len(b.per) && b.per[i].idx < lo {
		i++
	}
	b.per = append(b.per[:0], b.per[i:]...)
	for h, k := range b.last {
		if k < lo {
			delete(b.last, h)
		}
	}
}

// countDistinct counts the values last seen in buckets lo..hi.
func (tr *track) countDistinct(st *groupState, lo, hi int64) int {
	n := 0
	if b := st.big; b != nil {
		for _, bk := range b.per {
			if bk.idx >= lo && bk.idx <= hi {
				n += int(bk.a)
			}
		}
		return n
	}
	for _, e := range st.set {
		if e.last >= lo && e.last <= hi {
			n++
		}
	}
	return n
}

// pruneDistinct forgets values last seen before bucket lo.
func (tr *track) pruneDistinct(st *groupState, lo int64) {
	if st.big != nil {
		st.big.dropBefore(lo)
		return
	}
	st.set = slices.DeleteFunc(st.set, func(e setEntry) bool { return e.last < lo })
}

// entries lists a large set's values newest first, in the encoded form.
func (b *bigSet) entries(dst []setEntry) []setEntry {
	for h, k := range b.last {
		dst = append(dst, setEntry{hash: h, last: k})
	}
	slices.SortFunc(dst, func(x, y setEntry) int {
		if x.last != y.last {
			return int(y.last - x.last)
		}
		return int(int64(x.hash) - int64(y.hash))
	})
	return dst
}

// adopt turns a decoded entry list into the large form, for a track that
// keeps one.
func (tr *track) adopt(st *groupState) {
	if !tr.isBig() || len(st.set) == 0 {
		st.big = nil
		return
	}
	b := &bigSet{last: make(map[uint32]int64, len(st.set))}
	for _, e := range st.set {
		b.last[e.hash] = e.last
		b.add(e.last, 1)
	}
	st.big, st.set = b, st.set[:0]
}

func (b *bigSet) clone() *bigSet {
	if b == nil {
		return nil
	}
	return &bigSet{last: maps.Clone(b.last), per: slices.Clone(b.per)}
}

func (b *bigSet) newest() (int64, bool) {
	if b == nil || len(b.per) == 0 {
		return 0, false
	}
	return b.per[len(b.per)-1].idx, true
}
