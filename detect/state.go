package detect

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
)

// A group's state for one rule is one fastcache value (a ruleState): a
// version byte (ruleVersion), the number of conditions (tracks), then per
// track its length and its state. A track's state is a small varint
// header, then mostly fixed-width entries, so that decoding is a few loads
// per bucket and the common update (one more event in a share's
// denominator) can be made in place without decoding at all:
//
//	version   byte (stateVersion)
//	shift     byte: distinct_share's sampling level (see dset.keep)
//	counts    uvarint each: fine buckets, distinct entries, fresh entries,
//	          known entries, baseline series, sketches, samples
//	first     varint: fine bucket of the group's first event (its history)
//	fineBase  varint: the bucket other bucket indexes are relative to
//	fine      per bucket 12 bytes: index - fineBase, a, b (uint32 LE)
//	distinct  per value 8 bytes: 32-bit hash, bucket of its latest event
//	          (relative to fineBase, int32); fresh and known alike
//	series    per baseline: uvarint samples, varint last sampled coarse
//	          bucket, then per sample a uvarint coarse-bucket step and a
//	          float32 value
//	sketches  per fine bucket with latency values: varint index - fineBase,
//	          uvarint length, the DDSketch encoding (index mapping omitted)
//	sample    per request id: 1-byte length, bytes (at most 64)
//
// Buckets hold counters a (matching events) and b (events matching the
// rule's `of`). Only non-empty buckets are stored, so a group seen once
// costs about 30 bytes plus its sample.

const (
	ruleVersion  = 4
	stateVersion = 4
	sampleSize   = 5
	maxSampleID  = 64
	fineSize     = 12
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

// series is one baseline check's history: the value of its aggregate over
// the condition's window, sampled at the end of each sample interval.
type series struct {
	sampled int64 // the last coarse bucket whose end was sampled
	samples []baseSample
	cache   baseCache // derived; not encoded
}

type baseSample struct {
	c int64 // coarse bucket at whose end the value was taken
	v float32
}

type sketchBucket struct {
	idx int64
	sk  *ddsketch.DDSketch
}

// groupState is the decoded value. Its slices are reused across decodes;
// sample entries alias the buffer the state was decoded from.
type groupState struct {
	first int64
	// shift samples the values of a distinct_share condition once its
	// sets would outgrow their caps: both sets keep only the values whose
	// hash has its low shift bits zero, a 2^-shift sample that estimates
	// both counts alike, so the share is unbiased.
	shift    uint8
	fine     []bucket
	set      dset       // the distinct checks' values among matching events
	ofset    dset       // distinct_share: the values among `of` events
	fresh    []setEntry // sequence: then_new values of the trigger's events
	known    []setEntry // sequence: then_new values known for the group
	series   []series
	sketches []sketchBucket
	sample   [][]byte
	// totA and totB are the sums of a and b over fine: derived, not
	// encoded. Pruning keeps fine within the window ending with its newest
	// bucket, so they are that window's sums.
	totA, totB uint64
}

func (s *groupState) reset() {
	s.first, s.totA, s.totB, s.shift = 0, 0, 0, 0
	s.fine, s.fresh, s.known = s.fine[:0], s.fresh[:0], s.known[:0]
	s.set.reset()
	s.ofset.reset()
	s.series, s.sketches, s.sample = s.series[:0], s.sketches[:0], s.sample[:0]
}

var errCorrupt = errors.New("corrupt window state")

// ruleState is a group's state for one rule: one groupState per track.
type ruleState struct {
	tracks []groupState
}

// resize makes rs hold n tracks, reusing their storage.
func (rs *ruleState) resize(n int) {
	if cap(rs.tracks) >= n {
		rs.tracks = rs.tracks[:n]
	} else {
		rs.tracks = append(rs.tracks[:cap(rs.tracks)], make([]groupState, n-cap(rs.tracks))...)
	}
}

// decode replaces rs with the n tracks encoded in b; an empty b is a group
// never seen. On error rs holds n empty tracks.
func (rs *ruleState) decode(b []byte, tracks []*track, sk *sketchCodec) error {
	n := len(tracks)
	rs.resize(n)
	for i := range rs.tracks {
		rs.tracks[i].reset()
	}
	if len(b) == 0 {
		return nil
	}
	for j := range n {
		sec, ok := section(b, j)
		if !ok || rs.tracks[j].decode(sec, sk) != nil {
			for i := range rs.tracks {
				rs.tracks[i].reset()
			}
			return errCorrupt
		}
		rs.tracks[j].set.adopt(tracks[j].setCap)
		rs.tracks[j].ofset.adopt(tracks[j].ofCap)
	}
	return nil
}

// encode appends the encoding of rs to dst.
func (rs *ruleState) encode(dst []byte) []byte {
	dst = append(dst, ruleVersion)
	dst = binary.AppendUvarint(dst, uint64(len(rs.tracks)))
	for i := range rs.tracks {
		if rs.tracks[i].empty() && len(rs.tracks[i].sample) == 0 {
			dst = binary.AppendUvarint(dst, 0) // never written: no section
			continue
		}
		n := len(dst)
		dst = binary.AppendUvarint(dst, 0)
		start := len(dst)
		dst = rs.tracks[i].encode(dst)
		dst = patchLength(dst, n, start)
	}
	return dst
}

// section returns track j's encoded state within a rule state's encoding b.
func section(b []byte, j int) ([]byte, bool) {
	if len(b) == 0 || b[0] != ruleVersion {
		return nil, false
	}
	d := decoder{b: b[1:]}
	n := d.uvarint()
	if d.err || uint64(j) >= n {
		return nil, false
	}
	for i := 0; ; i++ {
		l := d.uvarint()
		if d.err || uint64(len(d.b)) < l {
			return nil, false
		}
		if i == j {
			return d.b[:l], true
		}
		d.b = d.b[l:]
	}
}

// header is the decoded fixed part of a value; off is where fine entries start.
type header struct {
	shift                                                          uint8
	nFine, nSet, nOfSet, nFresh, nKnown, nSeries, nSketch, nSample int
	first, fineBase                                                int64
	off                                                            int
}

func parseHeader(b []byte) (header, bool) {
	var h header
	if len(b) < 2 || b[0] != stateVersion || b[1] > maxShift {
		return h, false
	}
	h.shift = b[1]
	d := decoder{b: b[2:]}
	var n [8]uint64
	for i := range n {
		n[i] = d.uvarint()
		if n[i] > maxEntries {
			return h, false
		}
	}
	h.first, h.fineBase = d.varint(), d.varint()
	if d.err || n[7] > sampleSize {
		return h, false
	}
	h.nFine, h.nSet, h.nOfSet, h.nFresh, h.nKnown = int(n[0]), int(n[1]), int(n[2]), int(n[3]), int(n[4])
	h.nSeries, h.nSketch, h.nSample = int(n[5]), int(n[6]), int(n[7])
	h.off = len(b) - len(d.b)
	if len(d.b) < h.nFine*fineSize+(h.nSet+h.nOfSet+h.nFresh+h.nKnown)*setSize+h.nSample {
		return h, false
	}
	return h, true
}

// decode replaces s with the state in b. On error s is left empty. Sketches
// are decoded with provider's stores under mapping.
func (s *groupState) decode(b []byte, sk *sketchCodec) error {
	s.reset()
	if len(b) == 0 {
		return nil
	}
	h, ok := parseHeader(b)
	if !ok {
		return errCorrupt
	}
	s.first, s.shift = h.first, h.shift
	p := b[h.off:]
	le := binary.LittleEndian
	for range h.nFine {
		bk := bucket{idx: h.fineBase + int64(le.Uint32(p)), a: le.Uint32(p[4:]), b: le.Uint32(p[8:])}
		s.fine = append(s.fine, bk)
		s.totA += uint64(bk.a)
		s.totB += uint64(bk.b)
		p = p[fineSize:]
	}
	s.set.list, p = decodeSet(s.set.list, p, h.nSet, h.fineBase)
	s.ofset.list, p = decodeSet(s.ofset.list, p, h.nOfSet, h.fineBase)
	s.fresh, p = decodeSet(s.fresh, p, h.nFresh, h.fineBase)
	s.known, p = decodeSet(s.known, p, h.nKnown, h.fineBase)
	d := decoder{b: p}
	for range h.nSeries {
		s.series = append(s.series, series{})
		d.series(&s.series[len(s.series)-1])
	}
	for range h.nSketch {
		idx, n := d.varint(), d.uvarint()
		if d.err || uint64(len(d.b)) < n || sk == nil {
			s.reset()
			return errCorrupt
		}
		x, err := sk.decode(d.b[:n])
		if err != nil {
			s.reset()
			return errCorrupt
		}
		s.sketches = append(s.sketches, sketchBucket{idx: h.fineBase + idx, sk: x})
		d.b = d.b[n:]
	}
	if d.err {
		s.reset()
		return errCorrupt
	}
	p = d.b
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

func decodeSet(dst []setEntry, p []byte, n int, base int64) ([]setEntry, []byte) {
	le := binary.LittleEndian
	for range n {
		dst = append(dst, setEntry{hash: le.Uint32(p), last: base + int64(int32(le.Uint32(p[4:])))})
		p = p[setSize:]
	}
	return dst, p
}

func (d *decoder) series(sr *series) {
	n := d.uvarint()
	sr.sampled = d.varint()
	if n > maxEntries {
		d.err = true
		return
	}
	sr.samples = sr.samples[:0]
	c := int64(0)
	for i := range n {
		step := d.uvarint()
		if i == 0 {
			c = d.varint()
		} else {
			c += int64(step)
		}
		if len(d.b) < 4 {
			d.err = true
			return
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
		d.b = d.b[4:]
		sr.samples = append(sr.samples, baseSample{c: c, v: v})
	}
	sr.cache = baseCache{}
}

// encode appends the encoding of s to dst. Fine buckets and set entries
// must lie within 2^31 buckets of the base, which pruning guarantees.
func (s *groupState) encode(dst []byte) []byte {
	set := s.set.entries(nil)
	ofset := s.ofset.entries(nil)
	base := s.base()
	dst = append(dst, stateVersion, s.shift)
	for _, n := range []int{len(s.fine), len(set), len(ofset), len(s.fresh), len(s.known), len(s.series), len(s.sketches), len(s.sample)} {
		dst = binary.AppendUvarint(dst, uint64(n))
	}
	dst = binary.AppendVarint(dst, s.first)
	dst = binary.AppendVarint(dst, base)
	le := binary.LittleEndian
	for _, bk := range s.fine {
		dst = le.AppendUint32(dst, uint32(bk.idx-base))
		dst = le.AppendUint32(dst, bk.a)
		dst = le.AppendUint32(dst, bk.b)
	}
	for _, set := range [][]setEntry{set, ofset, s.fresh, s.known} {
		for _, e := range set {
			dst = le.AppendUint32(dst, e.hash)
			dst = le.AppendUint32(dst, uint32(int32(e.last-base)))
		}
	}
	for i := range s.series {
		sr := &s.series[i]
		dst = binary.AppendUvarint(dst, uint64(len(sr.samples)))
		dst = binary.AppendVarint(dst, sr.sampled)
		for j, x := range sr.samples {
			if j == 0 {
				dst = binary.AppendUvarint(dst, 0)
				dst = binary.AppendVarint(dst, x.c)
			} else {
				dst = binary.AppendUvarint(dst, uint64(x.c-sr.samples[j-1].c))
			}
			dst = le.AppendUint32(dst, math.Float32bits(x.v))
		}
	}
	for _, sb := range s.sketches {
		dst = binary.AppendVarint(dst, sb.idx-base)
		n := len(dst)
		dst = binary.AppendUvarint(dst, 0) // placeholder, patched below
		start := len(dst)
		sb.sk.Encode(&dst, true)
		dst = patchLength(dst, n, start)
	}
	for _, id := range s.sample {
		dst = append(dst, byte(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

// patchLength rewrites the one-byte uvarint placeholder at n with the
// length of dst[start:], shifting the body when the length needs more bytes.
func patchLength(dst []byte, n, start int) []byte {
	body := len(dst) - start
	var lb [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(lb[:], uint64(body))
	if ln == 1 {
		dst[n] = lb[0]
		return dst
	}
	dst = append(dst, lb[:ln-1]...)
	copy(dst[n+ln:], dst[start:start+body])
	copy(dst[n:], lb[:ln])
	return dst
}

// base is the bucket the encoding's indexes are relative to: the oldest fine
// bucket, else the newest entry of a set.
func (s *groupState) base() int64 {
	switch {
	case len(s.fine) > 0:
		return s.fine[0].idx
	case !s.set.empty():
		n, _ := s.set.newest()
		return n
	case !s.ofset.empty():
		n, _ := s.ofset.newest()
		return n
	case len(s.fresh) > 0:
		return s.fresh[0].last
	case len(s.known) > 0:
		return s.known[0].last
	case len(s.sketches) > 0:
		return s.sketches[0].idx
	}
	return s.first
}

// bumpNewestB adds one to counter b of the newest fine bucket in place, when
// that bucket is k, and returns the sum of b over buckets lo..k, or
// math.MaxUint64 when the newest bucket alone holds more than atMost. It is the
// update for an event that only counts in a share's denominator and lands in
// the current bucket, which is most of the traffic a per-service or
// per-address share sees.
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

// newestIs reports whether the newest fine bucket of an encoded track
// state is k.
func newestIs(v []byte, k int64) bool {
	h, ok := parseHeader(v)
	if !ok || h.nFine == 0 {
		return false
	}
	last := v[h.off+(h.nFine-1)*fineSize:]
	return h.fineBase+int64(binary.LittleEndian.Uint32(last)) == k
}

// knownSince reports whether the encoded state v knows the value with hash
// h as seen at or after bucket since, without decoding the state.
func knownSince(v []byte, h uint32, since int64) bool {
	hd, ok := parseHeader(v)
	if !ok {
		return false
	}
	le := binary.LittleEndian
	p := v[hd.off+hd.nFine*fineSize+(hd.nSet+hd.nOfSet+hd.nFresh)*setSize:]
	for range hd.nKnown {
		if le.Uint32(p) == h && hd.fineBase+int64(int32(le.Uint32(p[4:]))) >= since {
			return true
		}
		p = p[setSize:]
	}
	return false
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

// addBucket adds (a, b) to the bucket idx of an ascending bucket list,
// inserting it if needed, and returns the list.
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

// addFine adds (a, b) to fine bucket idx and to the totals.
func (s *groupState) addFine(idx int64, a, b uint32) {
	s.fine = addBucket(s.fine, idx, a, b)
	s.totA += uint64(a)
	s.totB += uint64(b)
}

// sums sums the fine buckets with lo <= idx <= hi, from the totals when
// the range holds them all.
func (s *groupState) sums(lo, hi int64) (a, b uint64) {
	if n := len(s.fine); n == 0 || (lo <= s.fine[0].idx && hi >= s.fine[n-1].idx) {
		return s.totA, s.totB
	}
	return sumRange(s.fine, lo, hi)
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
