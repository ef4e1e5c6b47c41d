package ingest

import (
	"math/rand/v2"
	"testing"
)

func TestSeqSet(t *testing.T) {
	var s seqSet
	for _, seq := range []uint64{1, 2, 3, 10, 5, 4, 12, 11, 7} {
		s.add(seq)
	}
	want := []seqRange{{1, 5}, {7, 7}, {10, 12}}
	if len(s.ranges) != len(want) {
		t.Fatalf("ranges %v, want %v", s.ranges, want)
	}
	for i := range want {
		if s.ranges[i] != want[i] {
			t.Fatalf("ranges %v, want %v", s.ranges, want)
		}
	}
	for seq := uint64(0); seq <= 14; seq++ {
		in := (seq >= 1 && seq <= 5) || seq == 7 || (seq >= 10 && seq <= 12)
		if s.has(seq) != in {
			t.Errorf("has(%d) = %v, want %v", seq, !in, in)
		}
	}
}

// TestSeqSetMatchesAMap adds sequences in a shuffled, gappy order and
// compares every answer with a plain map.
func TestSeqSetMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s seqSet
	ref := map[uint64]bool{}
	for range 20000 {
		seq := uint64(r.IntN(5000)) + 1
		s.add(seq)
		ref[seq] = true
	}
	sameAsMap(t, &s, ref, 5001)
}

func TestSeqSetForgetsOldestRanges(t *testing.T) {
	var s seqSet
	for i := range uint64(maxRanges + 10) {
		s.add(2*i + 1) // every other sequence: one range each
	}
	if len(s.ranges) != maxRanges {
		t.Fatalf("%d ranges, want at most %d", len(s.ranges), maxRanges)
	}
	if s.has(1) || !s.has(2*(maxRanges+9)+1) {
		t.Errorf("kept the oldest range or lost the newest")
	}
}

func TestSeqSetAddRange(t *testing.T) {
	var s seqSet
	s.add(3)
	s.addRange(10, 20) // above everything: one new range
	s.addRange(4, 11)  // overlapping both: merged into one
	s.addRange(0, 2)   // 0 is no sequence; nothing is added
	for seq := uint64(0); seq <= 22; seq++ {
		in := seq >= 3 && seq <= 20
		if s.has(seq) != in {
			t.Errorf("has(%d) = %v, want %v", seq, !in, in)
		}
	}
	if len(s.ranges) != 1 {
		t.Errorf("ranges %v, want one", s.ranges)
	}
	s.reset()
	if s.has(3) {
		t.Error("reset kept 3")
	}
}

// TestSeqSetRangesMatchAMap adds random, overlapping ranges and compares
// every answer with a plain map.
func TestSeqSetRangesMatchAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s seqSet
	ref := map[uint64]bool{}
	for range 2000 {
		lo := uint64(r.IntN(5000)) + 1
		hi := lo + uint64(r.IntN(20))
		s.addRange(lo, hi)
		for seq := lo; seq <= hi; seq++ {
			ref[seq] = true
		}
	}
	sameAsMap(t, &s, ref, 5021)
}

// sameAsMap fails t unless s holds exactly the sequences ref holds, from 0
// to upTo, as disjoint ranges that do not touch.
func sameAsMap(t *testing.T, s *seqSet, ref map[uint64]bool, upTo uint64) {
	t.Helper()
	for seq := uint64(0); seq <= upTo; seq++ {
		if s.has(seq) != ref[seq] {
			t.Fatalf("has(%d) = %v, want %v", seq, s.has(seq), ref[seq])
		}
	}
	for i := 1; i < len(s.ranges); i++ {
		if s.ranges[i-1].hi+1 >= s.ranges[i].lo {
			t.Fatalf("ranges %v and %v overlap or touch", s.ranges[i-1], s.ranges[i])
		}
	}
}

func TestCovers(t *testing.T) {
	var applied, settled seqSet
	applied.addRange(10, 20)
	settled.addRange(3, 9)
	settled.addRange(21, 25)
	cases := []struct {
		lo, hi uint64
		want   bool
	}{
		{3, 25, true},  // the two sets together, touching
		{10, 20, true}, // one set alone
		{2, 25, false}, // 2 in neither
		{3, 26, false}, // 26 in neither
		{15, 15, true},
		{30, 29, true}, // an empty range: nothing awaits acknowledgement
	}
	for _, c := range cases {
		if got := covers(c.lo, c.hi, &applied, &settled); got != c.want {
			t.Errorf("covers(%d, %d) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}
