package detect

import "github.com/cespare/xxhash/v2"

// presence answers, without touching the state cache, whether a group of a
// rule whose denominators do not start groups (lazyStart) may have state:
// a per-rule Bloom filter of the groups written in the current and the
// previous period (the rule's longest window). Most events of a rule that
// counts an address's every request (scanning) come from addresses that
// never matched it; for them the filter says "absent" and the event costs
// no cache lookup. A group that saw no matching event for a whole window
// has nothing left to count its denominators against, so forgetting it
// after two periods changes no result; a false "present" only costs the
// lookup it would have cost anyway.
type presence struct {
	period int64 // ns
	epoch  int64 // period index of cur
	cur    []uint64
	prev   []uint64
}

const presenceBits = 1 << 20

func newPresence(period int64) *presence {
	return &presence{period: max(period, 1), epoch: -1 << 62, cur: make([]uint64, presenceBits/64), prev: make([]uint64, presenceBits/64)}
}

// rotate moves the filter to the period of time t (ns).
func (p *presence) rotate(t int64) {
	ep := floorDiv(t, p.period)
	switch {
	case ep == p.epoch:
		return
	case ep == p.epoch+1:
		p.cur, p.prev = p.prev, p.cur
		clear(p.cur)
	case ep > p.epoch+1:
		clear(p.cur)
		clear(p.prev)
	default:
		return // time went back within lateness: keep the newer period
	}
	p.epoch = ep
}

func positions(key []byte) (uint64, uint64, uint64) {
	h := xxhash.Sum64(key)
	return h & (presenceBits - 1), (h >> 20) & (presenceBits - 1), (h >> 40) & (presenceBits - 1)
}

func has(bits []uint64, a, b, c uint64) bool {
	return bits[a>>6]&(1<<(a&63)) != 0 && bits[b>>6]&(1<<(b&63)) != 0 && bits[c>>6]&(1<<(c&63)) != 0
}

// mayHave reports whether the group with key may have state at time t. A
// nil presence (a rule without a filter) says it may.
func (p *presence) mayHave(key []byte, t int64) bool {
	if p == nil {
		return true
	}
	p.rotate(t)
	a, b, c := positions(key)
	return has(p.cur, a, b, c) || has(p.prev, a, b, c)
}

// add records that the group with key has state at time t.
func (p *presence) add(key []byte, t int64) {
	if p == nil {
		return
	}
	p.rotate(t)
	a, b, c := positions(key)
	p.cur[a>>6] |= 1 << (a & 63)
	p.cur[b>>6] |= 1 << (b & 63)
	p.cur[c>>6] |= 1 << (c & 63)
}
