package detect

import (
	"encoding/binary"
)

// Group keys. Every state value and alert of a group is keyed by the rule
// index, a slot byte and the group_by values, length-prefixed: the slot is
// the track (condition) for state values and alertSlot for the alert.
const alertSlot = 0xff

// apply runs rule i on the current event.
func (e *Engine) apply(i int) {
	c := e.rules[i].c
	rc := &e.counts.rules[i]
	rc.evaluations++
	m := c.match.eval(&e.ctx)
	if c.kind == KindSequence {
		if m {
			rc.matches++
			e.applySequence(i, c)
		}
		return
	}
	if c.hasOf {
		// Events outside `of` are ignored; inside, they count in the
		// denominator whether or not they match.
		if !c.of.eval(&e.ctx) {
			return
		}
	} else if !m {
		return
	}
	if m {
		rc.matches++
	}
	if !e.groupKey(i, c) {
		return
	}
	t := e.ctx.ev.Time.UnixNano()
	for j, tr := range c.tracks {
		mt := m && tr.match.eval(&e.ctx)
		if mt || (c.hasOf && tr.needB) {
			e.applyTrack(i, j, tr, mt, t)
		}
	}
}

// applyTrack updates track j's window state of the current group with the
// event (matching it, or only in its denominator), evaluates the condition
// and fires or refreshes the group's alert.
func (e *Engine) applyTrack(i, j int, tr *track, mt bool, t int64) {
	c := e.rules[i].c
	k := floorDiv(t, tr.g)
	key := e.slot(byte(j))
	st, h, done := e.loadForUpdate(i, j, key, k, t, mt)
	if done {
		return
	}
	khPrev, had := st.newestIdx()
	if st.empty() {
		st.first = k
		tr.initSeries(st, k)
	}
	if tr.nSeries > 0 {
		tr.sampleAt(st, k, e.sk)
	}
	if !e.update(tr, st, k, mt) {
		return
	}
	var res result
	kh, _ := st.newestIdx()
	switch {
	case !tr.hasPct:
		res = tr.evaluate(st, max(k, kh), e.sk, &e.scratch)
	case !had || k > khPrev:
		// A percentile is judged once per bucket, over the buckets before
		// the one this event opened.
		res = tr.evaluate(st, k-1, e.sk, &e.scratch)
	}
	if mt {
		e.vBuf = append(e.vBuf[:0], e.ctx.ev.RequestID...)
		if h != nil {
			st.pushOwnedSample(e.vBuf)
		} else {
			st.pushSample(e.vBuf)
		}
	}
	e.store(key, st, h, c.alwaysHot)
	if res.ok {
		res.track = j
		e.holds(i, e.slot(alertSlot), res, t, st.sample)
	}
}

// loadForUpdate returns the group's state to update: its hot entry's, or the
// cache's decoded into the scratch state. done reports that the in-place
// fast path for a denominator-only event has already applied the event.
func (e *Engine) loadForUpdate(i, j int, key []byte, k, t int64, mt bool) (st *groupState, h *hotEntry, done bool) {
	if h = e.hot.get(key); h != nil {
		return &h.st, h, false
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	if !mt && e.denominatorOnly(i, j, key, k, t) {
		return nil, nil, true
	}
	if e.st.decode(e.valBuf, e.sk) != nil {
		e.log.Warn("detect state corrupt; starting the group afresh", "rule", e.rules[i].Name)
	}
	return &e.st, nil, false
}

// load returns a group's state: its hot entry's, or the engine's scratch
// state decoded from the cache (h is nil then).
func (e *Engine) load(key []byte) (st *groupState, h *hotEntry) {
	if h = e.hot.get(key); h != nil {
		return &h.st, h
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	_ = e.st.decode(e.valBuf, e.sk)
	return &e.st, nil
}

// store saves a group's updated state: in place for a hot group, else into
// the cache, or into the hot set once it has grown past hotAdmitBytes or
// when it is a per-service group (admit). Groups the hot set evicts to
// stay in budget go back to the cache.
func (e *Engine) store(key []byte, st *groupState, h *hotEntry, admit bool) {
	var evicted []*hotEntry
	if h != nil {
		evicted = e.hot.resize(h, st.size(), e.evicted[:0])
	} else {
		e.outBuf = st.encode(e.outBuf[:0])
		if len(e.outBuf) < hotAdmitBytes && !admit {
			e.cache.Set(key, e.outBuf)
			return
		}
		e.cache.Del(key)
		evicted = e.hot.admit(key, st, len(e.outBuf), e.evicted[:0])
	}
	for _, old := range evicted {
		e.outBuf = old.st.encode(e.outBuf[:0])
		e.cache.Set([]byte(old.key), e.outBuf)
	}
	clear(evicted)
	e.evicted = evicted[:0]
}

// denominatorOnly is the fast path for an event that counts only in a
// condition's denominator: it updates the current bucket in place. Such an
// event lowers a share, so it can only make the condition hold when it
// brings the denominator to the condition's minimum, and it can keep a
// firing alert alive; both cases are evaluated. It reports false when the
// fast path does not apply and the caller must take the general one.
func (e *Engine) denominatorOnly(i, j int, key []byte, k, t int64) bool {
	tr := e.rules[i].c.tracks[j]
	if !tr.denomFast || tr.nSeries > 0 {
		return false
	}
	if len(e.firing) > 0 && e.firing[string(e.slot(alertSlot))] != nil {
		e.slot(byte(j))
		return false
	}
	e.slot(byte(j))
	winB, ok := bumpNewestB(e.valBuf, k, k-tr.nb+1, tr.minB)
	if !ok {
		return false
	}
	e.cache.Set(key, e.valBuf)
	if tr.minB > 0 && winB == tr.minB && e.st.decode(e.valBuf, e.sk) == nil {
		kh, _ := e.st.newestIdx()
		if res := tr.evaluate(&e.st, kh, e.sk, &e.scratch); res.ok {
			res.track = j
			e.holds(i, e.slot(alertSlot), res, t, e.st.sample)
		}
	}
	return true
}

// update adds the event to the state; it reports false when the event does
// not count (a distinct check's field is absent and nothing else counts).
func (e *Engine) update(tr *track, st *groupState, k int64, mt bool) bool {
	if tr.hasDistinct && mt {
		var ok bool
		e.vBuf, ok = tr.distinct.key(e.vBuf[:0], &e.ctx)
		switch {
		case ok:
			st.set = addToSet(st.set, hashValue(e.vBuf), k, tr.setCap)
		case !tr.needB:
			return false
		default:
			mt = false
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
		st.fine = addBucket(st.fine, k, a, b)
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
