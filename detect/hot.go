package detect

import (
	"container/list"
	"slices"
)

// The hot set keeps the decoded window state of the busiest groups in
// memory, under a fixed byte budget carved out of state_memory: those whose
// encoded state has grown past hotAdmitBytes (spike rules, a sustained
// attack), and every group of a rule grouped by service alone or not at
// all. A deployment has few services (each service's events must come on
// its own subject), and such a group sees a large share of all traffic: a
// per-service ratio rule's state, small as it is, was otherwise read from
// and written back to fastcache for every event. Busy groups are then updated without a cache
// read, a decode, an encode and a cache write per event, and, as important,
// without rewriting a kilobyte-sized value into fastcache's log for every
// event, which would evict the quiet groups that share its cache bucket.
// Least recently used groups go back to fastcache when the budget is full.

const (
	hotAdmitBytes = 512
	hotOverhead   = 256 // map entry, list element, struct, slice headers
	maxHotBudget  = 32 << 20
)

type hotEntry struct {
	key     string
	rs      ruleState
	size    int
	touches uint32
	elem    *list.Element
}

type hotSet struct {
	m      map[string]*hotEntry
	lru    list.List // front: most recently used
	bytes  int
	budget int
}

func newHotSet(budget int) *hotSet {
	h := &hotSet{m: make(map[string]*hotEntry), budget: budget}
	h.lru.Init()
	return h
}

func (h *hotSet) get(key []byte) *hotEntry {
	e := h.m[string(key)]
	if e != nil {
		// An approximate LRU: a busy group is moved to the front once in a
		// while, not on every event; eviction only needs the cold end.
		if e.touches++; e.touches&15 == 1 {
			h.lru.MoveToFront(e.elem)
		}
	}
	return e
}

// admit copies rs into a new hot entry; it returns the entries evicted to make
// room, which the caller writes back to the cache.
func (h *hotSet) admit(key []byte, rs *ruleState, size int, evicted []*hotEntry) []*hotEntry {
	e := &hotEntry{key: string(key)}
	rs.copyTo(&e.rs)
	e.size = size + len(key) + hotOverhead
	e.elem = h.lru.PushFront(e)
	h.m[e.key] = e
	h.bytes += e.size
	return h.evict(evicted)
}

// resize records that e's state has grown or shrunk to about size bytes.
func (h *hotSet) resize(e *hotEntry, size int, evicted []*hotEntry) []*hotEntry {
	size += len(e.key) + hotOverhead
	h.bytes += size - e.size
	e.size = size
	return h.evict(evicted)
}

func (h *hotSet) evict(evicted []*hotEntry) []*hotEntry {
	for h.bytes > h.budget && h.lru.Len() > 1 {
		e := h.lru.Remove(h.lru.Back()).(*hotEntry)
		delete(h.m, e.key)
		h.bytes -= e.size
		evicted = append(evicted, e)
	}
	return evicted
}

// size estimates the encoded size of rs.
func (rs *ruleState) size() int {
	n := 4
	for i := range rs.tracks {
		n += 2 + rs.tracks[i].size()
	}
	return n
}

// copyTo deep-copies rs into dst.
func (rs *ruleState) copyTo(dst *ruleState) {
	dst.resize(len(rs.tracks))
	for i := range rs.tracks {
		rs.tracks[i].copyTo(&dst.tracks[i])
	}
}

// sketchSize is what one latency sketch is counted as in the hot set's
// budget: a few pages of the paginated store.
const sketchSize = 1024

// size estimates the encoded size of s.
func (s *groupState) size() int {
	n := 16 + len(s.fine)*fineSize + (len(s.fresh)+len(s.known))*setSize + len(s.sketches)*sketchSize +
		s.set.size() + s.ofset.size()
	for _, sr := range s.series {
		n += 8 + len(sr.samples)*6
	}
	for _, id := range s.sample {
		n += 1 + len(id)
	}
	return n
}

// copyTo deep-copies s into dst, reusing dst's storage; sample ids get
// storage of their own (maxSampleID bytes each, so later pushes reuse it).
func (s *groupState) copyTo(dst *groupState) {
	dst.first, dst.totA, dst.totB, dst.shift = s.first, s.totA, s.totB, s.shift
	dst.fine = append(dst.fine[:0], s.fine...)
	dst.set, dst.ofset = s.set.clone(), s.ofset.clone()
	dst.fresh = append(dst.fresh[:0], s.fresh...)
	dst.known = append(dst.known[:0], s.known...)
	dst.series = dst.series[:0]
	for _, sr := range s.series {
		dst.series = append(dst.series, series{sampled: sr.sampled, samples: slices.Clone(sr.samples), cache: sr.cache})
	}
	dst.sketches = dst.sketches[:0]
	for _, sb := range s.sketches {
		dst.sketches = append(dst.sketches, sketchBucket{idx: sb.idx, sk: sb.sk.Copy()})
	}
	dst.sample = dst.sample[:0]
	for _, id := range s.sample {
		dst.sample = append(dst.sample, append(make([]byte, 0, maxSampleID), id...))
	}
}

// pushOwnedSample is pushSample for a state that owns its sample storage:
// the id is copied, into the storage of the id it displaces when there is one.
func (s *groupState) pushOwnedSample(id []byte) {
	if len(id) > maxSampleID {
		id = id[:maxSampleID]
	}
	var buf []byte
	if len(s.sample) == sampleSize {
		buf = s.sample[0]
		copy(s.sample, s.sample[1:])
		s.sample = s.sample[:sampleSize-1]
	}
	if cap(buf) < maxSampleID {
		buf = make([]byte, 0, maxSampleID)
	}
	s.sample = append(s.sample, append(buf[:0], id...))
}
