package detect

import (
	"encoding/binary"
)

// Group keys. A group's state for a rule and its alert are keyed by the
// rule index, a slot byte and the group_by values, length-prefixed: the
// slot is stateSlot for the state (every condition of the rule in one
// value, see ruleState) and alertSlot for the alert.
const (
	stateSlot = 0
	alertSlot = 0xff
)

// apply runs rule i on the current event.
func (e *Engine) apply(i int) {
	c := e.rules[i].c
	rc := &e.counts.rules[i]
	rc.evaluations++
	if c.kind == KindSequence {
		if c.match.eval(&e.ctx) {
			rc.matches++
			e.applySequence(i, c)
		}
		return
	}
	// Events outside `of` are ignored; inside, they count in the
	// denominator whether or not they match.
	if c.hasOf && !c.of.eval(&e.ctx) {
		return
	}
	m := c.match.eval(&e.ctx)
	if !c.hasOf && !m {
		return
	}
	if m {
		rc.matches++
	}
	if len(c.excluders) > 0 && e.firingFor(c.excluders) {
		return
	}
	if !e.groupKey(i, c) {
		return
	}
	var mts [maxConditions]bool
	counts, matched := false, false
	for j, tr := range c.tracks {
		mts[j] = m && tr.match.eval(&e.ctx)
		counts = counts || mts[j] || (c.hasOf && tr.needB)
		matched = matched || mts[j]
	}
	if counts {
		e.applyRule(i, c, mts[:len(c.tracks)], matched)
	}
}

// applyRule updates the conditions of rule i for the current group with the
// event (matching them as mts says, or only in their denominators),
// evaluates them and fires or refreshes the group's alert.
func (e *Engine) applyRule(i int, c *compiled, mts []bool, matched bool) {
	t := e.ctx.ev.Time.UnixNano()
	key := e.slot(stateSlot)
	if !e.present[i].touch(key, t, matched) {
		return // a denominator of a group without state: see presence
	}
	h := e.hot.get(key)
	rs := &e.rst
	if h != nil {
		rs = &h.rs
		if !matched && e.hotDenominator(i, c, rs, t) {
			return
		}
	} else {
		e.valBuf = e.cache.Get(e.valBuf[:0], key)
		if !matched {
			// A denominator alone does not start a group: the share of an
			// address counts from its first matching event in the window,
			// which spares a state per address for rules that count all of
			// its traffic. Services are the exception: their baselines
			// start with their traffic.
			if len(e.valBuf) == 0 && !c.alwaysHot && c.lazyStart {
				return
			}
			if e.denominatorOnly(i, c, key, t) {
				return
			}
		}
		if e.rst.decode(e.valBuf, c.tracks, e.sk) != nil {
			e.log.Warn("detect state corrupt; starting the group afresh", "rule", e.rules[i].Name)
		}
	}
	var results [maxConditions]result
	fired := false
	firing := e.isFiring(i)
	for j, tr := range c.tracks {
		if !mts[j] && !(c.hasOf && tr.needB) {
			continue
		}
		res, ok := e.applyTrack(tr, &rs.tracks[j], mts[j], t, h != nil, firing)
		if ok && res.ok {
			res.track = j
			results[j], fired = res, true
		}
	}
	e.store(key, rs, h, c.alwaysHot)
	if fired {
		for j := range c.tracks {
			if results[j].ok {
				e.holds(i, e.slot(alertSlot), results[j], t, rs.tracks[j].sample)
			}
		}
	}
}

// applyTrack updates one condition's state with the event and evaluates
// it; ok is false when the event did not count.
//
// An event that counts only in the denominator lowers a share, so it can
// make a condition start holding only by bringing its events to their
// minimum; unless the group's alert fires (and the event may keep it
// alive), the condition is evaluated only then. Busy service groups, whose
// events are mostly successes, are spared most evaluations.
func (e *Engine) applyTrack(tr *track, st *groupState, mt bool, t int64, owned, firing bool) (result, bool) {
	k := floorDiv(t, tr.g)
	khPrev, had := st.newestIdx()
	if st.empty() {
		st.first = k
		tr.initSeries(st, k)
	}
	if tr.nSeries > 0 {
		tr.sampleAt(st, k, e.sk)
	}
	if !e.update(tr, st, k, mt) {
		return result{}, false
	}
	var res result
	kh, _ := st.newestIdx()
	switch {
	case !mt && !firing && tr.denomFast && !tr.crossesMinB(st, max(k, kh)):
	case !tr.hasPct:
		res = tr.evaluate(st, max(k, kh), e.sk, &e.scratch)
	case !had || k > khPrev:
		// A percentile is judged once per bucket, over the buckets before
		// the one this event opened.
		res = tr.evaluate(st, k-1, e.sk, &e.scratch)
	}
	if mt {
		e.vBuf = append(e.vBuf[:0], e.ctx.ev.RequestID...)
		if owned {
			st.pushOwnedSample(e.vBuf)
		} else {
			st.pushSample(e.vBuf)
		}
	}
	return res, true
}

// crossesMinB reports whether the window ending with bucket k holds exactly
// the condition's least number of denominator events.
func (tr *track) crossesMinB(st *groupState, k int64) bool {
	if tr.minB == 0 {
		return false
	}
	_, b := st.sums(k-tr.nb+1, k)
	return b == tr.minB
}

// load returns a group's state for rule i: its hot entry's, or the engine's
// scratch state decoded from the cache (h is nil then).
func (e *Engine) load(i int, key []byte) (rs *ruleState, h *hotEntry) {
	if h = e.hot.get(key); h != nil {
		return &h.rs, h
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	if e.rst.decode(e.valBuf, e.rules[i].c.tracks, e.sk) != nil {
		e.log.Warn("detect state corrupt; starting the group afresh", "rule", e.rules[i].Name)
	}
	return &e.rst, nil
}

// store saves a group's updated state: in place for a hot group, else into
// the cache, or into the hot set once it has grown past hotAdmitBytes or
// when it is a per-service group (admit). Groups the hot set evicts to
// stay in budget go back to the cache.
func (e *Engine) store(key []byte, rs *ruleState, h *hotEntry, admit bool) {
	var evicted []*hotEntry
	if h != nil {
		evicted = e.hot.resize(h, rs.size(), e.evicted[:0])
	} else {
		e.outBuf = rs.encode(e.outBuf[:0])
		if len(e.outBuf) < hotAdmitBytes && !admit {
			e.cache.Set(key, e.outBuf)
			return
		}
		e.cache.Del(key)
		evicted = e.hot.admit(key, rs, len(e.outBuf), e.evicted[:0])
	}
	for _, old := range evicted {
		e.outBuf = old.rs.encode(e.outBuf[:0])
		e.cache.Set([]byte(old.key), e.outBuf)
	}
	clear(evicted)
	e.evicted = evicted[:0]
}

// denominatorOnly is the fast path for an event that counts only in
// denominators, for a group in the cache: it adds it to the current bucket
// of each condition in place. Such an event lowers a share, so it can only
// make a condition hold when it brings the denominator to the condition's
// minimum, and it can keep a firing alert alive; both cases are evaluated.
// It reports false when the fast path does not apply and the caller must
// take the general one.
func (e *Engine) denominatorOnly(i int, c *compiled, key []byte, t int64) bool {
	if e.isFiring(i) {
		return false
	}
	// First check that every condition can take the event in place, so
	// that a refusal leaves the value untouched for the general path.
	for j, tr := range c.tracks {
		if !tr.needB {
			continue
		}
		sec, ok := section(e.valBuf, j)
		if !tr.denomFast || tr.nSeries > 0 || !ok || !newestIs(sec, floorDiv(t, tr.g)) {
			return false
		}
	}
	var crossed [maxConditions]bool
	any := false
	for j, tr := range c.tracks {
		if !tr.needB {
			continue
		}
		sec, _ := section(e.valBuf, j)
		k := floorDiv(t, tr.g)
		winB, _ := bumpNewestB(sec, k, k-tr.nb+1, tr.minB)
		crossed[j] = tr.minB > 0 && winB == tr.minB
		any = any || crossed[j]
	}
	e.cache.Set(key, e.valBuf)
	if any && e.rst.decode(e.valBuf, c.tracks, e.sk) == nil {
		for j, tr := range c.tracks {
			if !crossed[j] {
				continue
			}
			st := &e.rst.tracks[j]
			kh, _ := st.newestIdx()
			if res := tr.evaluate(st, kh, e.sk, &e.scratch); res.ok {
				res.track = j
				e.holds(i, e.slot(alertSlot), res, t, st.sample)
			}
		}
	}
	return true
}

// hotDenominator is the fast path for an event that counts only in
// denominators, for a hot group (a service's or a busy client's, which see
// most traffic): when every condition it counts in already has the event's
// bucket as its newest, it adds the event to that bucket in place, with no
// pruning, sampling or evaluation, none of which the event can change:
// the window has not moved, and a denominator event can make a condition
// start holding only by bringing its events to their minimum (those, and a
// firing alert the event may keep alive, take the general path). It
// reports false, having changed nothing, when the fast path does not apply.
func (e *Engine) hotDenominator(i int, c *compiled, rs *ruleState, t int64) bool {
	if e.isFiring(i) {
		return false
	}
	for j, tr := range c.tracks {
		if !tr.needB {
			continue
		}
		st := &rs.tracks[j]
		n := len(st.fine)
		// Every event a condition with a denominator counts opens or
		// fills a bucket of fine, so its newest bucket is the condition's.
		if !tr.denomFast || n == 0 || st.fine[n-1].idx != floorDiv(t, tr.g) ||
			(tr.minB > 0 && st.totB+1 == tr.minB) {
			return false
		}
	}
	for j, tr := range c.tracks {
		if tr.needB {
			st := &rs.tracks[j]
			st.fine[len(st.fine)-1].b++
			st.totB++
		}
	}
	return true
}

// update adds the event to the state; it reports false when the event does
// not count (a distinct check's field is absent and nothing else counts).
func (e *Engine) update(tr *track, st *groupState, k int64, mt bool) bool {
	if tr.hasDistinct && (mt || tr.ofCap > 0) {
		var ok bool
		e.vBuf, ok = tr.distinct.key(e.vBuf[:0], &e.ctx)
		switch {
		case ok && tr.ofCap > 0:
			st.addShared(hashValue(e.vBuf), k, mt, tr)
		case ok:
			if mt {
				st.set.add(hashValue(e.vBuf), k, tr.setCap)
			}
		case !tr.needA && !tr.needB:
			return false // only the distinct count reads this event
		}
	}
	var a, b uint32
	if mt && tr.needA {
		a = 1
	}
	if tr.needB {
		b = 1
	}
	if a+b > 0 {
		st.addFine(k, a, b)
	}
	if tr.hasPct && mt && e.ctx.ev.HasLatency {
		e.sk.addValue(st, k, e.ctx.ev.LatencyMS)
	}
	kh, _ := st.newestIdx()
	tr.prune(st, max(k, kh))
	return true
}

// groupKey builds the key of the current event's group for rule i in
// e.keyBuf, in the alert slot; it reports false when the event lacks a
// group_by field.
func (e *Engine) groupKey(i int, c *compiled) bool {
	b := binary.BigEndian.AppendUint16(e.keyBuf[:0], uint16(i))
	b = append(b, alertSlot)
	var ok bool
	for _, f := range c.groupBy {
		if b, ok = f.key(b, &e.ctx); !ok {
			return false
		}
	}
	e.keyBuf = b
	return true
}

// isFiring reports whether the current group of rule i has a firing alert.
// It leaves the group key in the state slot.
func (e *Engine) isFiring(i int) bool {
	if e.counts.rules[i].firing == 0 {
		return false
	}
	f := e.firing[string(e.slot(alertSlot))] != nil
	e.slot(stateSlot)
	return f
}

// slot sets the slot byte of the current group key and returns the key.
func (e *Engine) slot(s byte) []byte {
	e.keyBuf[2] = s
	return e.keyBuf
}

// slotOf returns key (an alert key) with slot s, in e.scanKey.
func (e *Engine) slotOf(key []byte, s byte) []byte {
	e.scanKey = append(e.scanKey[:0], key...)
	e.scanKey[2] = s
	return e.scanKey
}
