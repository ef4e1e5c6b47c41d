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

// position returns the word of a key's bits in the filter and the bits: a
// blocked Bloom filter, three bits in one word, so that a lookup costs one
// memory access per period rather than three.
func position(key []byte) (word int, bits uint64) {
	h := xxhash.Sum64(key)
	word = int(h & (presenceBits/64 - 1))
	bits = 1<<(h>>20&63) | 1<<(h>>26&63) | 1<<(h>>32&63)
	return word, bits
}

// mayHave reports whether the group with key may have state at time t. A
// nil presence (a rule without a filter) says it may.
func (p *presence) mayHave(key []byte, t int64) bool {
	if p == nil {
		return true
	}
	p.rotate(t)
	w, bits := position(key)
	return p.cur[w]&bits == bits || p.prev[w]&bits == bits
}

// touch is mayHave for an event that updates the group's state when it may
// have some, or when starting is set: it then records that the group has
// state in the current period. It reports whether the event goes on to
// the group's state.
func (p *presence) touch(key []byte, t int64, starting bool) bool {
	if p == nil {
		return true
	}
	p.rotate(t)
	w, bits := position(key)
	if starting || p.cur[w]&bits == bits || p.prev[w]&bits == bits {
		p.cur[w] |= bits
		return true
	}
	return false
}
