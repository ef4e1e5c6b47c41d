package detect

import (
	"encoding/binary"
)

// apply runs rule i on the current event: match, update the group's window
// state in the cache, evaluate, and fire or refresh the group's alert.
func (e *Engine) apply(i int) {
	c := e.rules[i].c
	rc := &e.counts.rules[i]
	rc.evaluations++
	m := c.match.eval(&e.ctx)
	switch {
	case c.kind == KindRatio || (c.kind == KindSpike && c.of != nil):
		// Every event matching "of" counts in the denominator.
		if !c.of.eval(&e.ctx) {
			return
		}
	case !m:
		return
	}
	if m {
		rc.matches++
	}
	key, ok := e.groupKey(i, c)
	if !ok {
		return
	}
	t := e.ctx.ev.Time.UnixNano()
	k := floorDiv(t, c.g)
	st, h, done := e.loadForUpdate(i, key, k, t, m)
	if done {
		return
	}
	var res result
	switch c.kind {
	case KindSequence:
		if res, ok = e.applySequence(c, st, k); !ok {
			return
		}
	default:
		if !e.update(c, st, k, m) {
			return
		}
		kh, _ := st.newestIdx()
		res = c.evaluate(st, max(k, kh))
	}
	if m {
		e.vBuf = append(e.vBuf[:0], e.ctx.ev.RequestID...)
		if h != nil {
			st.pushOwnedSample(e.vBuf)
		} else {
			st.pushSample(e.vBuf)
		}
	}
	e.store(key, st, h, c.alwaysHot)
	if res.ok {
		e.holds(i, key, res, t, st)
	}
}

// loadForUpdate returns the group's state to update: its hot entry's, or the
// cache's decoded into the scratch state. done reports that the in-place
// fast path for a denominator-only event has already applied the event.
func (e *Engine) loadForUpdate(i int, key []byte, k, t int64, m bool) (st *groupState, h *hotEntry, done bool) {
	if h = e.hot.get(key); h != nil {
		return &h.st, h, false
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	if !m && e.denominatorOnly(i, key, k, t) {
		return nil, nil, true
	}
	if e.st.decode(e.valBuf) != nil {
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
	_ = e.st.decode(e.valBuf)
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

// denominatorOnly is the fast path for an event that counts only in a ratio
// or spike rule's denominator: it updates the current bucket in place. Such
// an event lowers the ratio, so it can only make the condition hold when it
// brings the window to exactly min_events, and it can keep a firing alert
// alive; both cases are evaluated. It reports false when the fast path does
// not apply and the caller must take the general one.
func (e *Engine) denominatorOnly(i int, key []byte, k, t int64) bool {
	c := e.rules[i].c
	if len(e.firing) > 0 && e.firing[string(key)] != nil {
		return false
	}
	winB, ok := bumpNewestB(e.valBuf, k, k-c.nb+1, uint64(c.minEvents))
	if !ok {
		return false
	}
	e.cache.Set(key, e.valBuf)
	if winB == uint64(c.minEvents) && e.st.decode(e.valBuf) == nil {
		kh, _ := e.st.newestIdx()
		if res := c.evaluate(&e.st, kh); res.ok {
			e.holds(i, key, res, t, &e.st)
		}
	}
	return true
}

// update adds the event to the state; it reports false when the event does
// not count (a distinct rule's field is absent).
func (e *Engine) update(c *compiled, st *groupState, k int64, m bool) bool {
	switch c.kind {
	case KindThreshold:
		st.fine = addBucket(st.fine, k, 1, 0)
	case KindDistinct:
		var ok bool
		e.vBuf, ok = c.distinct.key(e.vBuf[:0], e.ctx.ev)
		if !ok {
			return false
		}
		c.addDistinct(st, e.vBuf, k)
	case KindRatio, KindSpike:
		var a uint32
		if m {
			a = 1
		}
		if c.kind == KindSpike && c.of == nil { // count spike: only matching events reach here
			a = 1
		}
		if c.kind == KindSpike && len(st.fine) == 0 && len(st.coarse) == 0 {
			st.first = k
		}
		st.fine = addBucket(st.fine, k, a, 1)
	}
	kh, _ := st.newestIdx()
	c.prune(st, max(k, kh))
	return true
}

// applySequence counts a "first" event, or evaluates a "then" event against
// the "first" events before it in the window. ok is false when the event
// matches neither, or only "then" without completing the sequence: the state
// need not be written then.
func (e *Engine) applySequence(c *compiled, st *groupState, k int64) (result, bool) {
	first := c.first.eval(&e.ctx)
	then := c.then.eval(&e.ctx)
	if !first && !then {
		return result{}, false
	}
	var res result
	if then {
		c.prune(st, k)
		res = c.evaluate(st, k)
		if !first && !res.ok {
			return res, false
		}
	}
	if first {
		st.fine = addBucket(st.fine, k, 1, 0)
		kh, _ := st.newestIdx()
		c.prune(st, max(k, kh))
	}
	return res, true
}

// groupKey builds the cache key of the current event's group for rule i:
// the rule index and each group_by value, length-prefixed. ok is false when
// the event lacks a group_by field.
func (e *Engine) groupKey(i int, c *compiled) ([]byte, bool) {
	b := binary.BigEndian.AppendUint16(e.keyBuf[:0], uint16(i))
	var ok bool
	for _, f := range c.groupBy {
		if b, ok = f.key(b, e.ctx.ev); !ok {
			return nil, false
		}
	}
	e.keyBuf = b
	return b, true
}
