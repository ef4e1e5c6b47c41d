package detect

import "github.com/cespare/xxhash/v2"

// Sequences. A sequence's trigger is one or more tracks over its first
// events (and, with sequence.of, their denominator); a then event fires the
// alert when the trigger holds over the window before it. With then_new,
// the then event's value of that field must also be new: not among the
// values of the first events in the trigger's window (the fresh set, in
// track 0's state) and not among the values the group showed on known
// events within known.for (the known set, a state of its own under
// knownSlot, since far more groups have usual values than have an attack).

// knownSlot keys a sequence group's known values.
const knownSlot = 1

// knownRefresh is how stale (as a fraction of known.for) a known value may
// get before a known event rewrites it: most known events then only read.
const knownRefresh = 8

// applySequence runs sequence rule i on an event that matches its match.
func (e *Engine) applySequence(i int, c *compiled) {
	first := c.first.eval(&e.ctx)
	then := c.then.eval(&e.ctx)
	inOf := c.hasOf && c.of.eval(&e.ctx)
	known := c.known != nil && c.known.eval(&e.ctx)
	if !first && !then && !inOf && !known {
		return
	}
	if !e.groupKey(i, c) {
		return
	}
	t := e.ctx.ev.Time.UnixNano()
	var h uint32
	hasV := false
	if c.hasThenNew {
		e.nvBuf, hasV = c.thenNew.key(e.nvBuf[:0], &e.ctx)
		h = hashValue(e.nvBuf)
	}
	if then && e.present[i].mayHave(e.slot(stateSlot), t) {
		res, ok := e.sequenceTrigger(i, c, t, h, hasV)
		if ok {
			e.holds(i, e.slot(alertSlot), res, t, e.seqSample)
		}
	}
	if first || inOf {
		e.updateTrigger(i, c, first, inOf, h, hasV, t)
	}
	if known && hasV {
		e.learnKnown(c, h, t)
	}
}

// sequenceTrigger evaluates the trigger's tracks at t; it returns the first
// that holds, if the then_new value (hash h) is new, and keeps the trigger's
// request-id sample in e.seqSample.
func (e *Engine) sequenceTrigger(i int, c *compiled, t int64, h uint32, hasV bool) (result, bool) {
	rs, _ := e.load(i, e.slot(stateSlot))
	for j, tr := range c.tracks {
		st := &rs.tracks[j]
		k := floorDiv(t, tr.g)
		tr.prune(st, k)
		res := tr.evaluate(st, k, e.sk, &e.scratch)
		if !res.ok {
			continue
		}
		if c.hasThenNew {
			tr0 := c.tracks[0]
			k0 := floorDiv(t, tr0.g)
			if !hasV || inSet(rs.tracks[0].fresh, h, k0-tr0.nb+1) || e.isKnown(c, h, t) {
				return result{}, false
			}
		}
		res.track = j
		e.seqSample = e.seqSample[:0]
		for _, id := range st.sample {
			e.seqSample = append(e.seqSample, append([]byte(nil), id...))
		}
		return res, true
	}
	return result{}, false
}

// isKnown reports whether the group knows the then_new value hash h.
func (e *Engine) isKnown(c *compiled, h uint32, t int64) bool {
	if c.known == nil {
		return false
	}
	tr0 := c.tracks[0]
	since := floorDiv(t, tr0.g) - int64(c.knownFor)/tr0.g
	return e.knowsSince(e.slot(knownSlot), h, since)
}

// updateTrigger counts a first event (or a denominator) in the trigger's
// tracks and records the then_new value among the fresh values.
func (e *Engine) updateTrigger(i int, c *compiled, first, inOf bool, h uint32, hasV bool, t int64) {
	var mts [maxConditions]bool
	matched := false
	for j, tr := range c.tracks {
		mts[j] = first && tr.match.eval(&e.ctx)
		matched = matched || mts[j]
	}
	key := e.slot(stateSlot)
	if !e.present[i].touch(key, t, matched) {
		return // a denominator alone does not start a group (see applyRule)
	}
	rs, hot := e.load(i, key)
	for j, tr := range c.tracks {
		if mts[j] || (inOf && tr.needB) {
			e.applyTrack(tr, &rs.tracks[j], mts[j], t, hot != nil, false)
		}
	}
	if first && c.hasThenNew && hasV {
		tr0 := c.tracks[0]
		k0 := floorDiv(t, tr0.g)
		rs.tracks[0].fresh = addToSet(pruneSet(rs.tracks[0].fresh, k0-tr0.nb+1), h, k0, freshCap)
	}
	e.store(key, rs, hot, c.alwaysHot)
}

// learnKnown records that the group shows then_new value hash h on a known
// event. Most such events repeat what the group already knows: a table of
// recent confirmations spares them even reading its state.
func (e *Engine) learnKnown(c *compiled, h uint32, t int64) {
	tr0 := c.tracks[0]
	k := floorDiv(t, tr0.g)
	span := int64(c.knownFor) / tr0.g
	key := e.slot(knownSlot)
	fp := seenKey(key, h)
	fresh := k - span/knownRefresh
	if e.seen.fresh(fp, fresh) {
		return
	}
	if e.knowsSince(key, h, fresh) {
		e.seen.put(fp, k)
		return
	}
	var st *groupState
	hot := e.hot.get(key)
	if hot != nil {
		st = &hot.rs.tracks[0]
	} else {
		e.valBuf = e.cache.Get(e.valBuf[:0], key)
		e.kst.resize(1)
		st = &e.kst.tracks[0]
		if sec, ok := section(e.valBuf, 0); !ok || st.decode(sec, e.sk) != nil {
			st.reset()
		}
	}
	if st.empty() {
		st.first = k
	}
	st.known = addToSet(pruneSet(st.known, k-span), h, k, knownCap)
	if hot != nil {
		e.store(key, &hot.rs, hot, false)
	} else {
		e.store(key, &e.kst, nil, false)
	}
	e.seen.put(fp, k)
}

// knowsSince reports whether the known state under key knows h as seen at
// or after bucket since, reading the cache without decoding.
func (e *Engine) knowsSince(key []byte, h uint32, since int64) bool {
	if hot := e.hot.get(key); hot != nil {
		return inSet(hot.rs.tracks[0].known, h, since)
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	sec, ok := section(e.valBuf, 0)
	return ok && knownSince(sec, h, since)
}

// seenTable remembers which (group, known value) pairs were recently found
// known, so that the events of a user working from their usual address do
// not each read the user's state: a fixed-size, direct-mapped table of
// fingerprints and the bucket they were confirmed in. A collision only
// costs a state read.
type seenTable struct {
	e [seenSize]seenEntry
}

// seenEntry keeps a fingerprint and its bucket side by side: one memory
// access per lookup.
type seenEntry struct {
	fp uint64
	at int64
}

const seenSize = 1 << 17

func seenKey(key []byte, h uint32) uint64 {
	return xxhash.Sum64(key) ^ (uint64(h) * 0x9e3779b97f4a7c15)
}

func (s *seenTable) fresh(fp uint64, since int64) bool {
	en := &s.e[fp&(seenSize-1)]
	return en.fp == fp && en.at >= since
}

func (s *seenTable) put(fp uint64, k int64) {
	s.e[fp&(seenSize-1)] = seenEntry{fp: fp, at: k}
}
