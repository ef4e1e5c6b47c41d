package ingest

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Deduplication is per service. JetStream's own duplicate window is
// stream-wide: a message on vigil.events.evil with Nats-Msg-Id X would make
// it drop the victim's message on vigil.events.victim with the same id,
// and the subject is what authenticates a service. So VIGIL_EVENTS keeps no
// duplicate window (see EnsureStreams) and the consumer drops a message
// when a message on the same subject with the same Nats-Msg-Id was stored
// within ingest.duplicate_window before it. Times are JetStream's stored
// times, so the decision is the same live and when Rebuild replays the
// stream after a restart, which rebuilds the ids of the window.

// MaxDedupIDs bounds the message ids the consumer remembers (about 64 bytes
// each, so at most about 64 MiB); past it the oldest are forgotten before
// their window ends, and a retry of one of those would be applied again.
// vigil_ingest_dedup_ids shows the fill.
const MaxDedupIDs = 1 << 20

// dedup remembers the (subject, Nats-Msg-Id) pairs of the messages stored
// in the last window, in stream order. Keys are 128-bit keyed hashes under
// a seed chosen per process, so memory per id is fixed whatever its length
// and a sender cannot aim at a collision. It is safe for concurrent use.
type dedup struct {
	window int64 // nanoseconds
	max    int
	seeds  [2]maphash.Seed

	mu    sync.Mutex
	ids   map[dedupKey]dedupEntry
	order []dedupPlace // in the order stored; order[head:] are live
	head  int
}

// dedupPlace is one stored id, in order.
type dedupPlace struct {
	key dedupKey
	at  int64
}

type dedupKey [2]uint64

type dedupEntry struct {
	at  int64  // when JetStream stored the message, Unix nanoseconds
	seq uint64 // its stream sequence
}

func newDedup(window time.Duration, max int) *dedup {
	return &dedup{
		window: int64(window), max: max,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		ids:   map[dedupKey]dedupEntry{},
	}
}

// msgID returns msg's Nats-Msg-Id, or "" when it has none.
func msgID(msg jetstream.Msg) string {
	if h := msg.Headers(); h != nil {
		return h.Get(jetstream.MsgIDHeader)
	}
	return ""
}

// duplicate records the message with stream sequence seq, stored at `at`
// on subject with Nats-Msg-Id id, and reports whether it duplicates an
// earlier message: same subject and id, stored within the window before
// it. A message without an id is never a duplicate; the same message
// delivered again (same seq) is not a duplicate of itself.
func (d *dedup) duplicate(subject, id string, seq uint64, at time.Time) bool {
	if id == "" {
		return false
	}
	t := at.UnixNano()
	k := d.key(subject, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(t)
	if e, ok := d.ids[k]; ok {
		if e.seq == seq {
			return false
		}
		if t >= e.at && t-e.at <= d.window {
			return true
		}
	}
	d.ids[k] = dedupEntry{at: t, seq: seq}
	d.order = append(d.order, dedupPlace{k, t})
	for len(d.order)-d.head > d.max {
		d.drop()
	}
	return false
}

// expire forgets the ids stored more than the window before t.
func (d *dedup) expire(t int64) {
	for d.head < len(d.order) && t-d.order[d.head].at > d.window {
		d.drop()
	}
}

// drop forgets the oldest id, and compacts order once most of it is
// forgotten.
func (d *dedup) drop() {
	p := d.order[d.head]
	d.order[d.head] = dedupPlace{}
	d.head++
	// The key may have been stored again since, after its window: then
	// its entry is the newer one, forgotten with the newer place.
	if e, ok := d.ids[p.key]; ok && e.at == p.at {
		delete(d.ids, p.key)
	}
	if d.head > len(d.order)/2 && d.head > 1024 {
		d.order = append(d.order[:0:0], d.order[d.head:]...)
		d.head = 0
	}
}

// size returns how many ids are remembered.
func (d *dedup) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

// reset forgets every id.
func (d *dedup) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.ids)
	d.order, d.head = nil, 0
}

func (d *dedup) key(subject, id string) dedupKey {
	var k dedupKey
	for i := range k {
		var h maphash.Hash
		h.SetSeed(d.seeds[i])
		h.WriteString(subject)
		h.WriteByte(0)
		h.WriteString(id)
		k[i] = h.Sum64()
	}
	return k
}
