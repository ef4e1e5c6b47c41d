package detect

import (
	"encoding/binary"
	"math"

	"github.com/VictoriaMetrics/fastcache"
)

// A snapshot's state section, in order (see snapshot.go for the framing):
//
//	clock      newest, watermark, whether they are set, next due check
//	incidents  every incident reachable from the correlator or a firing
//	           alert (id, times, firing count, rules, severity, keys, the
//	           incident it merged into), the correlator's open count, its
//	           active list and its key index, by table position
//	firing     the firing alerts in the order they fired, each with its
//	           key, labels, scans, values, sample, entities and incident
//	hot        the hot set from most to least recently used: key, size,
//	           touches, and per condition its state in the cache's
//	           encoding (state.go) plus what that encoding derives or
//	           leaves out (sums, set forms, baseline caches)
//	seen       the non-empty entries of the known-values table
//	presence   per rule with a presence filter, its period and words
//
// Counts are checked against the bytes left, indexes against the table
// they point into, keys against the rules, so that a state that decodes
// cannot make the engine panic later.

// wbuf appends a snapshot's fields.
type wbuf []byte

func (w *wbuf) u(v uint64)    { *w = binary.AppendUvarint(*w, v) }
func (w *wbuf) i(v int64)     { *w = binary.AppendVarint(*w, v) }
func (w *wbuf) f(v float64)   { *w = binary.LittleEndian.AppendUint64(*w, math.Float64bits(v)) }
func (w *wbuf) blob(b []byte) { w.u(uint64(len(b))); *w = append(*w, b...) }
func (w *wbuf) str(s string)  { w.u(uint64(len(s))); *w = append(*w, s...) }
func (w *wbuf) u64(v uint64)  { *w = binary.LittleEndian.AppendUint64(*w, v) }
func (w *wbuf) flag(v bool) {
	if v {
		w.u(1)
	} else {
		w.u(0)
	}
}
func (w *wbuf) strs(s []string) {
	w.u(uint64(len(s)))
	for _, x := range s {
		w.str(x)
	}
}

func (d *decoder) blob() []byte {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.blob()) }

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.err = true
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) f() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) flag() bool {
	v := d.uvarint()
	if v > 1 {
		d.err = true
	}
	return v == 1
}

// count reads a count of elements that take at least size bytes each, and
// refuses one the bytes left cannot hold.
func (d *decoder) count(size int) int {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)/size) {
		d.err = true
		return 0
	}
	return int(n)
}

// index reads an index below n.
func (d *decoder) index(n int) int {
	v := d.uvarint()
	if d.err || v >= uint64(n) {
		d.err = true
		return 0
	}
	return int(v)
}

func (d *decoder) strs() []string {
	var s []string
	for range d.count(1) {
		s = append(s, d.str())
	}
	return s
}

// restored is a decoded state section, with the cache loaded beside it.
type restored struct {
	newest, wm, nextDue int64
	hasTime             bool
	incidents           *correlator
	firing              map[string]*firingAlert
	order               []*firingAlert
	hot                 *hotSet
	seen                *seenTable
	present             []*presence
	cache               *fastcache.Cache
}

// encodeState encodes the state section; the caller holds the lock.
func (e *Engine) encodeState() []byte {
	var w wbuf
	w.i(e.newest)
	w.i(e.wm)
	w.flag(e.hasTime)
	w.i(e.nextDue)
	incIdx := e.encodeIncidents(&w)
	w.u(uint64(len(e.order)))
	for _, a := range e.order {
		encodeAlert(&w, a, incIdx)
	}
	w.u(uint64(e.hot.lru.Len()))
	for el := e.hot.lru.Front(); el != nil; el = el.Next() {
		encodeHot(&w, el.Value.(*hotEntry))
	}
	encodeSeen(&w, e.seen)
	for _, p := range e.present {
		if p != nil {
			w.i(p.epoch)
			encodeWords(&w, p.cur)
			encodeWords(&w, p.prev)
		}
	}
	return w
}

// decodeState decodes a state section for e, without touching e.
func (e *Engine) decodeState(b []byte) (*restored, error) {
	d := &decoder{b: b}
	st := &restored{firing: make(map[string]*firingAlert)}
	st.newest, st.wm = d.varint(), d.varint()
	st.hasTime = d.flag()
	st.nextDue = d.varint()
	incs, ok := e.decodeIncidents(d, st)
	if !ok {
		return nil, snapshotCorrupt("its incidents do not decode")
	}
	n := d.count(1)
	if n > e.opts.MaxFiring {
		return nil, snapshotCorrupt("it holds %d firing alerts, more than the limit of %d", n, e.opts.MaxFiring)
	}
	for range n {
		a, ok := e.decodeAlert(d, incs)
		if !ok || st.firing[string(a.key)] != nil {
			return nil, snapshotCorrupt("its firing alerts do not decode")
		}
		st.firing[string(a.key)] = a
		st.order = append(st.order, a)
	}
	hotBudget, _ := splitBudget(e.opts.StateMemory)
	st.hot = newHotSet(hotBudget)
	for range d.count(1) {
		if !e.decodeHot(d, st.hot) {
			return nil, snapshotCorrupt("its hot window state does not decode")
		}
	}
	st.seen = &seenTable{}
	if !decodeSeen(d, st.seen) {
		return nil, snapshotCorrupt("its table of known values does not decode")
	}
	st.present = make([]*presence, len(e.present))
	for i, p := range e.present {
		if p == nil {
			continue
		}
		np := newPresence(p.period)
		np.epoch = d.varint()
		if !decodeWords(d, np.cur) || !decodeWords(d, np.prev) {
			return nil, snapshotCorrupt("its presence filters do not decode")
		}
		st.present[i] = np
	}
	if d.err || len(d.b) != 0 {
		return nil, snapshotCorrupt("its state section does not decode")
	}
	return st, nil
}

// install puts a restored state in place of e's empty one; the caller
// holds the lock.
func (e *Engine) install(st *restored) {
	old := e.cache
	e.cache = st.cache
	old.Reset()
	e.newest, e.wm, e.hasTime, e.nextDue = st.newest, st.wm, st.hasTime, st.nextDue
	e.incidents, e.firing, e.order = st.incidents, st.firing, st.order
	e.hot, e.seen = st.hot, st.seen
	// Filters are filled in place: their periods, which decodeState reads
	// without the lock, never change.
	for i, p := range st.present {
		if p != nil {
			e.present[i].epoch, e.present[i].cur, e.present[i].prev = p.epoch, p.cur, p.prev
		}
	}
	for i := range e.counts.rules {
		e.counts.rules[i].firing = 0
	}
	for _, a := range e.order {
		e.counts.rules[a.rule].firing++
	}
}

// hot entry flags: what the cache's encoding of a condition's state loses.
const (
	hotBigSet   = 1 << iota // the distinct set is in its large form
	hotBigOfSet             // the `of` set is in its large form
)

func encodeHot(w *wbuf, h *hotEntry) {
	w.str(h.key)
	w.u(uint64(h.size))
	w.u(uint64(h.touches))
	w.u(uint64(len(h.rs.tracks)))
	var buf []byte
	for i := range h.rs.tracks {
		s := &h.rs.tracks[i]
		buf = s.encode(buf[:0])
		w.blob(buf)
		w.u(s.totA)
		w.u(s.totB)
		flags := uint64(0)
		if s.set.big != nil {
			flags |= hotBigSet
		}
		if s.ofset.big != nil {
			flags |= hotBigOfSet
		}
		w.u(flags)
		for _, sr := range s.series {
			c := sr.cache
			w.flag(c.valid)
			w.i(c.cMax)
			w.u(uint64(c.nSamples))
			w.u(uint64(c.n))
			w.f(c.median)
			w.f(c.spread)
		}
	}
}

// decodeHot decodes a hot entry and appends it to the least recently used
// end of h.
func (e *Engine) decodeHot(d *decoder, h *hotSet) bool {
	key := d.str()
	size, touches := d.uvarint(), d.uvarint()
	n := d.count(1)
	if d.err || len(key) < 3 || h.m[key] != nil || size > math.MaxInt32 || touches > math.MaxUint32 {
		return false
	}
	ri := int(binary.BigEndian.Uint16([]byte(key)))
	if ri >= len(e.rules) {
		return false
	}
	tracks := e.rules[ri].c.tracks
	switch key[2] {
	case stateSlot:
		if n != len(tracks) {
			return false
		}
	case knownSlot:
		if n != 1 || len(tracks) == 0 {
			return false
		}
	default:
		return false
	}
	en := &hotEntry{key: key, size: int(size), touches: uint32(touches)}
	var rs ruleState
	rs.resize(n)
	for j := range rs.tracks {
		if !e.decodeHotTrack(d, &rs.tracks[j], tracks[j], key[2] == stateSlot) {
			return false
		}
	}
	rs.copyTo(&en.rs)
	en.elem = h.lru.PushBack(en)
	h.m[key] = en
	h.bytes += en.size
	return true
}

func (e *Engine) decodeHotTrack(d *decoder, s *groupState, tr *track, state bool) bool {
	if s.decode(d.blob(), e.sk) != nil {
		return false
	}
	s.totA, s.totB = d.uvarint(), d.uvarint()
	flags := d.uvarint()
	for _, f := range []struct {
		set *dset
		bit uint64
	}{{&s.set, hotBigSet}, {&s.ofset, hotBigOfSet}} {
		if flags&f.bit != 0 {
			f.set.adopt(bigSetAt + 1)
			if f.set.big == nil {
				f.set.big = &bigSet{last: make(map[uint32]int64)}
			}
		}
	}
	for i := range s.series {
		s.series[i].cache = baseCache{valid: d.flag(), cMax: d.varint(), nSamples: int(d.uvarint()),
			n: int(d.uvarint()), median: d.f(), spread: d.f()}
	}
	// The engine indexes a condition's series by its checks: a state
	// that has any must have them all.
	return !d.err && flags < 4 && (!state || (s.empty() && len(s.series) == 0) || len(s.series) == tr.nSeries)
}

// encodeSeen writes the table's used entries, by position.
func encodeSeen(w *wbuf, s *seenTable) {
	n := 0
	for _, en := range s.e {
		if en != (seenEntry{}) {
			n++
		}
	}
	w.u(uint64(n))
	last := -1
	for i, en := range s.e {
		if en != (seenEntry{}) {
			w.u(uint64(i - last))
			w.u64(en.fp)
			w.i(en.at)
			last = i
		}
	}
}

func decodeSeen(d *decoder, s *seenTable) bool {
	at := -1
	for range d.count(10) {
		at += int(d.uvarint())
		if d.err || at < 0 || at >= seenSize {
			return false
		}
		s.e[at] = seenEntry{fp: d.u64(), at: d.varint()}
	}
	return !d.err
}

// encodeWords writes the non-zero words of a presence filter, by position.
func encodeWords(w *wbuf, words []uint64) {
	n := 0
	for _, x := range words {
		if x != 0 {
			n++
		}
	}
	w.u(uint64(n))
	last := -1
	for i, x := range words {
		if x != 0 {
			w.u(uint64(i - last))
			w.u64(x)
			last = i
		}
	}
}

func decodeWords(d *decoder, words []uint64) bool {
	at := -1
	for range d.count(9) {
		at += int(d.uvarint())
		if d.err || at < 0 || at >= len(words) {
			return false
		}
		words[at] = d.u64()
	}
	return !d.err
}
