package ingest

import (
	"slices"
	"sort"
	"sync"
)

// seqSet is a set of stream sequences, kept as sorted, disjoint ranges.
// The consumer records in it the messages it applied and settled, so that a
// message delivered again (its acknowledgement was lost when NATS went away,
// or a restarted server had not yet stored it) is acknowledged without
// being applied or counted a second time. Messages are settled nearly in
// stream order, so the set stays a handful of ranges; past maxRanges the
// oldest are forgotten.
type seqSet struct {
	mu     sync.Mutex
	ranges []seqRange
}

type seqRange struct{ lo, hi uint64 }

const maxRanges = 4096

// add records seq; 0 (no sequence known) is ignored.
func (s *seqSet) add(seq uint64) { s.addRange(seq, seq) }

// addRange records lo..hi, both included, merging it with the ranges it
// overlaps or touches.
func (s *seqSet) addRange(lo, hi uint64) {
	if lo == 0 || hi < lo {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.ranges); n > 0 && lo == s.ranges[n-1].hi+1 { // the usual case
		s.ranges[n-1].hi = hi
		return
	}
	// The ranges from first to last (exclusive) overlap or touch lo..hi.
	first := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].hi+1 >= lo })
	last := first
	for last < len(s.ranges) && s.ranges[last].lo <= hi+1 {
		lo, hi = min(lo, s.ranges[last].lo), max(hi, s.ranges[last].hi)
		last++
	}
	s.ranges = slices.Replace(s.ranges, first, last, seqRange{lo, hi})
	if len(s.ranges) > maxRanges {
		s.ranges = slices.Delete(s.ranges, 0, len(s.ranges)-maxRanges)
	}
}

// reset forgets every sequence.
func (s *seqSet) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ranges = nil
}

// has reports whether seq was added.
func (s *seqSet) has(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found := s.find(seq)
	return found
}

// find returns the index of the range holding seq and true, or the index
// where a range starting at seq would be inserted and false. s.mu is held.
func (s *seqSet) find(seq uint64) (int, bool) {
	i, _ := slices.BinarySearchFunc(s.ranges, seq, func(r seqRange, seq uint64) int {
		switch {
		case r.hi < seq:
			return -1
		case r.lo > seq:
			return 1
		}
		return 0
	})
	return i, i < len(s.ranges) && s.ranges[i].lo <= seq && seq <= s.ranges[i].hi
}

// covers reports whether every sequence from lo to hi (both included) is in
// one of sets.
func covers(lo, hi uint64, sets ...*seqSet) bool {
	for seq := lo; seq <= hi; {
		next := seq
		for _, s := range sets {
			s.mu.Lock()
			if i, ok := s.find(seq); ok {
				next = max(next, s.ranges[i].hi+1)
			}
			s.mu.Unlock()
		}
		if next == seq {
			return false
		}
		seq = next
	}
	return true
}

// seqMap is a set of stream sequences that come and go (the messages in the
// pipeline): at most max_ack_pending of them at once.
type seqMap struct {
	mu sync.Mutex
	m  map[uint64]struct{}
}

// add records seq; 0 (no sequence known) is ignored.
func (s *seqMap) add(seq uint64) {
	if seq == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]struct{}{}
	}
	s.m[seq] = struct{}{}
}

func (s *seqMap) has(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[seq]
	return ok
}

func (s *seqMap) remove(seqs []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range seqs {
		delete(s.m, seq)
	}
}
