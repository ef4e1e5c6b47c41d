package detect

// Sequences. A sequence's trigger is one or more tracks over its first
// events (and, with sequence.of, their denominator); a then event fires the
// alert when the trigger holds over the window before it. With then_new,
// the then event's value of that field must also be new: not among the
// values of the first events in the trigger's window (the fresh set) and
// not among the values the group showed on known events within known.for
// (the known set). Both sets live in track 0's state.

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
	if then {
		res, ok := e.sequenceTrigger(c, t)
		if ok && (!c.hasThenNew || (hasV && e.isNew(c, h, t))) {
			e.holds(i, e.slot(alertSlot), res, t, e.seqSample)
		}
	}
	if first || inOf || (known && hasV) {
		e.updateSequence(i, c, first, inOf, known && hasV, h, t)
	}
}

// sequenceTrigger evaluates the trigger's tracks at t; it returns the first
// that holds, and keeps its request-id sample in e.seqSample.
func (e *Engine) sequenceTrigger(c *compiled, t int64) (result, bool) {
	for j, tr := range c.tracks {
		st, _ := e.load(e.slot(byte(j)))
		k := floorDiv(t, tr.g)
		tr.prune(st, k)
		res := tr.evaluate(st, k, e.sk, &e.scratch)
		if res.ok {
			res.track = j
			e.seqSample = e.seqSample[:0]
			for _, id := range st.sample {
				e.seqSample = append(e.seqSample, append([]byte(nil), id...))
			}
			return res, true
		}
	}
	return result{}, false
}

// isNew reports whether the then_new value hash h is neither among the
// trigger's first events in its window nor known for the group.
func (e *Engine) isNew(c *compiled, h uint32, t int64) bool {
	tr := c.tracks[0]
	st, _ := e.load(e.slot(0))
	k := floorDiv(t, tr.g)
	if inSet(st.fresh, h, k-tr.nb+1) {
		return false
	}
	return c.known == nil || !inSet(st.known, h, k-int64(c.knownFor)/tr.g)
}

// updateSequence counts a first event (or a denominator) in the trigger's
// tracks, and records the then_new value among the fresh values (a first
// event) or the known ones (a known event).
func (e *Engine) updateSequence(i int, c *compiled, first, inOf, known bool, h uint32, t int64) {
	for j, tr := range c.tracks {
		mt := first && tr.match.eval(&e.ctx)
		counts := mt || (inOf && tr.needB)
		fresh := j == 0 && first && c.hasThenNew && len(e.nvBuf) > 0
		learn := j == 0 && known
		if !counts && !fresh && !learn {
			continue
		}
		key := e.slot(byte(j))
		k := floorDiv(t, tr.g)
		if !counts && !fresh && e.knowsFresh(key, h, k-int64(c.knownFor)/tr.g/knownRefresh) {
			continue // known and recently refreshed: nothing to write
		}
		st, hot := e.loadState(i, key)
		if st.empty() {
			st.first = k
			tr.initSeries(st, k)
		}
		if tr.nSeries > 0 {
			tr.sampleAt(st, k, e.sk)
		}
		if counts {
			e.update(tr, st, k, mt)
		}
		if fresh {
			st.fresh = addToSet(pruneSet(st.fresh, k-tr.nb+1), h, k, freshCap)
		}
		if learn {
			st.known = addToSet(pruneSet(st.known, k-int64(c.knownFor)/tr.g), h, k, knownCap)
		}
		if mt {
			e.vBuf = append(e.vBuf[:0], e.ctx.ev.RequestID...)
			if hot != nil {
				st.pushOwnedSample(e.vBuf)
			} else {
				st.pushSample(e.vBuf)
			}
		}
		e.store(key, st, hot, c.alwaysHot)
	}
}

// knowsFresh reports whether the group's state under key knows h as seen at
// or after bucket since, reading the cache without decoding.
func (e *Engine) knowsFresh(key []byte, h uint32, since int64) bool {
	if hot := e.hot.get(key); hot != nil {
		return inSet(hot.st.known, h, since)
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	return knownSince(e.valBuf, h, since)
}

// loadState is load with a warning for a corrupt value.
func (e *Engine) loadState(i int, key []byte) (*groupState, *hotEntry) {
	if h := e.hot.get(key); h != nil {
		return &h.st, h
	}
	e.valBuf = e.cache.Get(e.valBuf[:0], key)
	if e.st.decode(e.valBuf, e.sk) != nil {
		e.log.Warn("detect state corrupt; starting the group afresh", "rule", e.rules[i].Name)
	}
	return &e.st, nil
}
