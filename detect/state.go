package detect

import (
	"encoding/binary"
	"errors"
	"math"
)

// A group's window state is one fastcache value: a small varint header, then
// fixed-width entries, so that decoding is a few loads per bucket and the
// common update (one more event in a ratio's newest bucket) can be made in
// place without decoding at all:
//
//	version   byte (stateVersion)
//	counts    uvarint each: fine buckets, coarse buckets, distinct entries, samples
//	first     varint: fine bucket of the group's first event (spike rules
//	          trust a baseline only once it is covered)
//	fineBase  varint: index of the oldest fine bucket
//	fine      per bucket 12 bytes: index - fineBase, a, b (uint32 LE)
//	coarse    per bucket 16 bytes: index (int64), a, b (spike baselines only)
//	distinct  per value 8 bytes: 32-bit hash, fine bucket of its latest event
//	          (relative to fineBase)
//	sample    per request id: 1-byte length, bytes (at most 64)
//
// Buckets hold counters a (matching events) and b (events matching "of").
// Only non-empty buckets are stored, so a group seen once costs about 30
// bytes plus its sample.

const (
	stateVersion = 2
	sampleSize   = 5
	maxSampleID  = 64
	fineSize     = 12
	coarseSize   = 16
	setSize      = 8
	maxEntries   = 1 << 16
)

type bucket struct {
	idx  int64
	a, b uint32
}

type setEntry struct {
	hash uint32
	last int64 // fine bucket index of the value's latest event
}

// groupState is the decoded value. Its slices are reused across decodes;
// sample entries alias the buffer the state was decoded from.
type groupState struct {
	first        int64
	fine, coarse []bucket
	set          []setEntry
	sample       [][]byte
}

func (s *groupState) reset() {
	s.first = 0
	s.fine, s.coarse, s.set, s.sample = s.fine[:0], s.coarse[:0], s.set[:0], s.sample[:0]
}

var errCorrupt = errors.New("corrupt window state")

// header is the decoded fixed part of a value; off is where fine entries start.
type header struct {
	nFine, nCoarse, nSet, nSample int
	first, fineBase               int64
	off                           int
}

func parseHeader(b []byte) (header, bool) {
	var h header
	if len(b) == 0 || b[0] != stateVersion {
		return h, false
	}
	d := decoder{b: b[1:]}
	n := [4]uint64{d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()}
	h.first, h.fineBase = d.varint(), d.varint()
	if d.err || n[0] > maxEntries || n[1] > maxEntries || n[2] > maxEntries || n[3] > sampleSize {
		return h, false
	}
	h.nFine, h.nCoarse, h.nSet, h.nSample = int(n[0]), int(n[1]), int(n[2]), int(n[3])
	h.off = len(b) - len(d.b)
	if len(d.b) < h.nFine*fineSize+h.nCoarse*coarseSize+h.nSet*setSize+h.nSample {
		return h, false
	}
	return h, true
}

// decode replaces s with the state in b. On error s is left empty.
func (s *groupState) decode(b []byte) error {
	s.reset()
	if len(b) == 0 {
		return nil
	}
	h, ok := parseHeader(b)
	if !ok {
		return errCorrupt
	}
	s.first = h.first
	p := b[h.off:]
	le := binary.LittleEndian
	for range h.nFine {
		s.fine = append(s.fine, bucket{idx: h.fineBase + int64(le.Uint32(p)), a: le.Uint32(p[4:]), b: le.Uint32(p[8:])})
		p = p[fineSize:]
	}
	for range h.nCoarse {
		s.coarse = append(s.coarse, bucket{idx: int64(le.Uint64(p)), a: le.Uint32(p[8:]), b: le.Uint32(p[12:])})
		p = p[coarseSize:]
	}
	for range h.nSet {
		s.set = append(s.set, setEntry{hash: le.Uint32(p), last: h.fineBase + int64(int32(le.Uint32(p[4:])))})
		p = p[setSize:]
	}
	for range h.nSample {
		if len(p) == 0 {
			s.reset()
			return errCorrupt
		}
		n := int(p[0])
		if n > maxSampleID || len(p) < 1+n {
			s.reset()
			return errCorrupt
		}
		s.sample = append(s.sample, p[1:1+n:1+n])
		p = p[1+n:]
	}
	return nil
}

// encode appends the encoding of s to dst. Fine buckets and distinct
// entries must lie within 2^31 buckets of the oldest fine bucket, which
// pruning guarantees.
func (s *groupState) encode(dst []byte) []byte {
	base := int64(0)
	switch {
	case len(s.fine) > 0:
		base = s.fine[0].idx
	case len(s.set) > 0:
		base = s.set[len(s.set)-1].last
	}
	dst = append(dst, stateVersion)
	dst = binary.AppendUvarint(dst, uint64(len(s.fine)))
	dst = binary.AppendUvarint(dst, uint64(len(s.coarse)))
	dst = binary.AppendUvarint(dst, uint64(len(s.set)))
	dst = binary.AppendUvarint(dst, uint64(len(s.sample)))
	dst = binary.AppendVarint(dst, s.first)
	dst = binary.AppendVarint(dst, base)
	le := binary.LittleEndian
	for _, bk := range s.fine {
		dst = le.AppendUint32(dst, uint32(bk.idx-base))
		dst = le.AppendUint32(dst, bk.a)
		dst = le.AppendUint32(dst, bk.b)
	}
	for _, bk := range s.coarse {
		dst = le.AppendUint64(dst, uint64(bk.idx))
		dst = le.AppendUint32(dst, bk.a)
		dst = le.AppendUint32(dst, bk.b)
	}
	for _, e := range s.set {
		dst = le.AppendUint32(dst, e.hash)
		dst = le.AppendUint32(dst, uint32(int32(e.last-base)))
	}
	for _, id := range s.sample {
		dst = append(dst, byte(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

// bumpNewestB adds one to counter b of the newest fine bucket in place, when
// that bucket is k, and returns the sum of b over buckets lo..k, or
// math.MaxUint64 when the newest bucket alone holds more than atMost. It is the
// update for an event that only counts in a ratio's denominator and lands in
// the current bucket, which is most of the traffic a per-service ratio or
// spike rule sees.
func bumpNewestB(v []byte, k, lo int64, atMost uint64) (winB uint64, ok bool) {
	h, ok := parseHeader(v)
	if !ok || h.nFine == 0 {
		return 0, false
	}
	le := binary.LittleEndian
	p := v[h.off : h.off+h.nFine*fineSize]
	last := p[(h.nFine-1)*fineSize:]
	if h.fineBase+int64(le.Uint32(last)) != k {
		return 0, false
	}
	b := le.Uint32(last[8:])
	if b < 1<<32-1 {
		le.PutUint32(last[8:], b+1)
	}
	if uint64(b) >= atMost {
		return math.MaxUint64, true
	}
	for ; len(p) >= fineSize; p = p[fineSize:] {
		if h.fineBase+int64(le.Uint32(p)) >= lo {
			winB += uint64(le.Uint32(p[8:]))
		}
	}
	return winB, true
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// add adds (a, b) to the bucket idx of an ascending bucket list, inserting it
// if needed, and returns the list.
func addBucket(bs []bucket, idx int64, a, b uint32) []bucket {
	i := len(bs)
	for i > 0 && bs[i-1].idx > idx {
		i--
	}
	if i > 0 && bs[i-1].idx == idx {
		bs[i-1].a = satAdd(bs[i-1].a, a)
		bs[i-1].b = satAdd(bs[i-1].b, b)
		return bs
	}
	bs = append(bs, bucket{})
	copy(bs[i+1:], bs[i:])
	bs[i] = bucket{idx: idx, a: a, b: b}
	return bs
}

func satAdd(x, y uint32) uint32 {
	if s := x + y; s >= x {
		return s
	}
	return 1<<32 - 1
}

// sumRange sums the buckets with lo <= idx <= hi.
func sumRange(bs []bucket, lo, hi int64) (a, b uint64) {
	for _, bk := range bs {
		if bk.idx >= lo && bk.idx <= hi {
			a += uint64(bk.a)
			b += uint64(bk.b)
		}
	}
	return a, b
}

// pushSample records id as the newest sample, keeping the last sampleSize.
func (s *groupState) pushSample(id []byte) {
	if len(id) > maxSampleID {
		id = id[:maxSampleID]
	}
	if len(s.sample) == sampleSize {
		copy(s.sample, s.sample[1:])
		s.sample = s.sample[:sampleSize-1]
	}
	s.sample = append(s.sample, id)
}
