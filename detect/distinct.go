package detect

import (
	"maps"
	"slices"
)

// Distinct values. A condition's distinct checks keep, per group, the
// values seen (as 32-bit hashes) with the bucket of their latest event: in
// a dset. A small set (a check bounded below bigSetAt, as for an address or
// a user) is a slice ordered newest first. A large one, which only a
// population needs (the failing networks of a login endpoint during a
// botnet attack, thousands of them), is a map from hash to bucket plus the
// number of values whose latest event is in each bucket: an event then
// costs a map update, and counting a window sums its buckets, whatever the
// number of values. Both encode as the same list of entries.

const bigSetAt = 128

// maxShift bounds the sampling of distinct_share's sets: a 2^-24 sample.
const maxShift = 24

type dset struct {
	list []setEntry // newest first
	big  *bigSet
}

type bigSet struct {
	last map[uint32]int64
	per  []bucket // ascending by idx; a counts the values last seen in idx
}

// add records value hash h seen in bucket k, keeping at most limit values
// (the oldest go first).
func (d *dset) add(h uint32, k int64, limit int) {
	if limit <= bigSetAt {
		d.list = addToSet(d.list, h, k, limit)
		return
	}
	if d.big == nil {
		d.big = &bigSet{last: make(map[uint32]int64)}
	}
	b := d.big
	old, seen := b.last[h]
	switch {
	case seen && k <= old:
		return
	case seen:
		b.add(old, -1)
	case len(b.last) >= limit:
		b.evictOldest()
	}
	b.last[h] = k
	b.add(k, 1)
}

// count counts the values last seen in buckets lo..hi.
func (d *dset) count(lo, hi int64) int {
	n := 0
	if b := d.big; b != nil {
		for _, bk := range b.per {
			if bk.idx >= lo && bk.idx <= hi {
				n += int(bk.a)
			}
		}
		return n
	}
	for _, e := range d.list {
		if e.last >= lo && e.last <= hi {
			n++
		}
	}
	return n
}

// prune forgets values last seen before bucket lo.
func (d *dset) prune(lo int64) {
	if d.big != nil {
		d.big.dropBefore(lo)
		return
	}
	d.list = slices.DeleteFunc(d.list, func(e setEntry) bool { return e.last < lo })
}

func (d *dset) newest() (int64, bool) {
	if b := d.big; b != nil {
		if len(b.per) == 0 {
			return 0, false
		}
		return b.per[len(b.per)-1].idx, true
	}
	if len(d.list) == 0 {
		return 0, false
	}
	return d.list[0].last, true
}

func (d *dset) empty() bool { return len(d.list) == 0 && d.big == nil }

func (d *dset) reset() { d.list, d.big = d.list[:0], nil }

// size is the set's encoded size, or about what a large one costs in memory.
func (d *dset) size() int {
	if b := d.big; b != nil {
		return len(b.last)*setSize*3 + len(b.per)*fineSize // a map costs about thrice its entries
	}
	return len(d.list) * setSize
}

func (d *dset) clone() dset {
	c := dset{list: slices.Clone(d.list)}
	if b := d.big; b != nil {
		c.big = &bigSet{last: maps.Clone(b.last), per: slices.Clone(b.per)}
	}
	return c
}

// entries returns the values newest first, in the encoded form.
func (d *dset) entries(scratch []setEntry) []setEntry {
	if d.big == nil {
		return d.list
	}
	for h, k := range d.big.last {
		scratch = append(scratch, setEntry{hash: h, last: k})
	}
	slices.SortFunc(scratch, func(x, y setEntry) int {
		if x.last != y.last {
			return int(y.last - x.last)
		}
		return int(int64(x.hash) - int64(y.hash))
	})
	return scratch
}

// adopt turns a decoded list into the large form when limit calls for one.
func (d *dset) adopt(limit int) {
	if limit <= bigSetAt || len(d.list) == 0 {
		return
	}
	b := &bigSet{last: make(map[uint32]int64, len(d.list))}
	for _, e := range d.list {
		b.last[e.hash] = e.last
		b.add(e.last, 1)
	}
	d.big, d.list = b, d.list[:0]
}

// add changes the count of values last seen in bucket idx by n.
func (b *bigSet) add(idx int64, n int) {
	i := len(b.per)
	for i > 0 && b.per[i-1].idx > idx {
		i--
	}
	if i > 0 && b.per[i-1].idx == idx {
		b.per[i-1].a = uint32(int(b.per[i-1].a) + n)
		if b.per[i-1].a == 0 {
			b.per = slices.Delete(b.per, i-1, i)
		}
		return
	}
	if n > 0 {
		b.per = slices.Insert(b.per, i, bucket{idx: idx, a: uint32(n)})
	}
}

// evictOldest forgets the values of the oldest bucket.
func (b *bigSet) evictOldest() {
	if len(b.per) > 0 {
		b.dropBefore(b.per[0].idx + 1)
	}
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

// len is the number of values in the set.
func (d *dset) len() int {
	if d.big != nil {
		return len(d.big.last)
	}
	return len(d.list)
}

// keep drops the values whose hash has any bit of mask set.
func (d *dset) keep(mask uint32) {
	if b := d.big; b != nil {
		b.per = b.per[:0]
		for h, k := range b.last {
			if h&mask != 0 {
				delete(b.last, h)
				continue
			}
			b.add(k, 1)
		}
		return
	}
	d.list = slices.DeleteFunc(d.list, func(e setEntry) bool { return e.hash&mask != 0 })
}
