package detect

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/VictoriaMetrics/fastcache"
)

// SameState reports the first difference between the state of a and b
// that a snapshot must carry, reading their structures directly rather
// than through the snapshot's encoding, so that a piece the snapshot
// leaves out (on both sides) still shows. Counters are not state.
func SameState(a, b *Engine) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	type clock struct {
		newest, wm, nextDue int64
		hasTime             bool
	}
	if x, y := (clock{a.newest, a.wm, a.nextDue, a.hasTime}), (clock{b.newest, b.wm, b.nextDue, b.hasTime}); x != y {
		return fmt.Errorf("clock %+v, want %+v", y, x)
	}
	for _, check := range []func(a, b *Engine) error{sameFiring, sameIncidents, sameHot, samePresence} {
		if err := check(a, b); err != nil {
			return err
		}
	}
	if *a.seen != *b.seen {
		return fmt.Errorf("known-values tables differ")
	}
	var sa, sb fastcache.Stats
	a.cache.UpdateStats(&sa)
	b.cache.UpdateStats(&sb)
	if sa.EntriesCount != sb.EntriesCount || sa.BytesSize != sb.BytesSize || sa.MaxBytesSize != sb.MaxBytesSize {
		return fmt.Errorf("cache holds %d entries in %d of %d bytes, want %d in %d of %d",
			sb.EntriesCount, sb.BytesSize, sb.MaxBytesSize, sa.EntriesCount, sa.BytesSize, sa.MaxBytesSize)
	}
	return nil
}

func sameFiring(a, b *Engine) error {
	if len(a.order) != len(b.order) || len(b.firing) != len(b.order) {
		return fmt.Errorf("%d firing alerts (%d by key), want %d", len(b.order), len(b.firing), len(a.order))
	}
	for i, x := range a.order {
		y := b.order[i]
		if b.firing[string(y.key)] != y {
			return fmt.Errorf("firing alert %d is not indexed by its key", i)
		}
		cx, cy := *x, *y
		cx.incident, cy.incident = nil, nil
		if !reflect.DeepEqual(cx, cy) {
			return fmt.Errorf("firing alert %d is %+v, want %+v", i, cy, cx)
		}
		if dx, dy := describe(x.incident), describe(y.incident); dx != dy {
			return fmt.Errorf("firing alert %d's incident is %s, want %s", i, dy, dx)
		}
	}
	for i := range a.counts.rules {
		if x, y := a.counts.rules[i].firing, b.counts.rules[i].firing; x != y {
			return fmt.Errorf("rule %d: %d firing, want %d", i, y, x)
		}
	}
	return nil
}

// describe spells out an incident and the incidents it merged into.
func describe(inc *incident) string {
	if inc == nil {
		return "none"
	}
	return fmt.Sprintf("{%s opened %d last %d firing %d rules %q severity %s keys %q into %s}",
		inc.id, inc.opened, inc.last, inc.firing, inc.rules, inc.severity, inc.keys, describe(inc.into))
}

func sameIncidents(a, b *Engine) error {
	x, y := a.incidents, b.incidents
	if x.opts != y.opts || x.opens != y.opens || len(x.active) != len(y.active) || len(x.byKey) != len(y.byKey) {
		return fmt.Errorf("correlator %+v with %d active and %d keys, want %+v with %d and %d",
			y.opts, len(y.active), len(y.byKey), x.opts, len(x.active), len(x.byKey))
	}
	for i := range x.active {
		if dx, dy := describe(x.active[i]), describe(y.active[i]); dx != dy {
			return fmt.Errorf("active incident %d is %s, want %s", i, dy, dx)
		}
	}
	for k, inc := range x.byKey {
		if dx, dy := describe(inc), describe(y.byKey[k]); dx != dy {
			return fmt.Errorf("incident of key %q is %s, want %s", k, dy, dx)
		}
	}
	return nil
}

func sameHot(a, b *Engine) error {
	x, y := a.hot, b.hot
	if x.budget != y.budget || x.bytes != y.bytes || len(x.m) != len(y.m) || x.lru.Len() != y.lru.Len() {
		return fmt.Errorf("hot set of %d entries in %d of %d bytes, want %d in %d of %d",
			len(y.m), y.bytes, y.budget, len(x.m), x.bytes, x.budget)
	}
	ey := y.lru.Front()
	for ex := x.lru.Front(); ex != nil; ex = ex.Next() {
		hx, hy := ex.Value.(*hotEntry), ey.Value.(*hotEntry)
		ey = ey.Next()
		if hx.key != hy.key || hx.size != hy.size || hx.touches != hy.touches || y.m[hy.key] != hy || hy.elem == nil {
			return fmt.Errorf("hot entry %q (size %d, touches %d) where %q (size %d, touches %d) was",
				hy.key, hy.size, hy.touches, hx.key, hx.size, hx.touches)
		}
		if len(hx.rs.tracks) != len(hy.rs.tracks) {
			return fmt.Errorf("hot entry %q has %d conditions, want %d", hx.key, len(hy.rs.tracks), len(hx.rs.tracks))
		}
		for j := range hx.rs.tracks {
			if err := sameGroup(&hx.rs.tracks[j], &hy.rs.tracks[j]); err != nil {
				return fmt.Errorf("hot entry %q, condition %d: %w", hx.key, j, err)
			}
		}
	}
	return nil
}

// sameGroup compares two group states, taking nil and empty slices alike.
func sameGroup(x, y *groupState) error {
	switch {
	case x.first != y.first || x.shift != y.shift || x.totA != y.totA || x.totB != y.totB:
		return fmt.Errorf("first %d shift %d sums %d/%d, want %d %d %d/%d", y.first, y.shift, y.totA, y.totB, x.first, x.shift, x.totA, x.totB)
	case !slices.Equal(x.fine, y.fine):
		return fmt.Errorf("buckets %v, want %v", y.fine, x.fine)
	case !slices.Equal(x.fresh, y.fresh) || !slices.Equal(x.known, y.known):
		return fmt.Errorf("sequence sets differ")
	case !sameSet(&x.set, &y.set) || !sameSet(&x.ofset, &y.ofset):
		return fmt.Errorf("distinct sets differ")
	case !slices.EqualFunc(x.sample, y.sample, slices.Equal):
		return fmt.Errorf("sample %q, want %q", y.sample, x.sample)
	case len(x.series) != len(y.series) || len(x.sketches) != len(y.sketches):
		return fmt.Errorf("%d series and %d sketches, want %d and %d", len(y.series), len(y.sketches), len(x.series), len(x.sketches))
	}
	for i := range x.series {
		sx, sy := x.series[i], y.series[i]
		if sx.sampled != sy.sampled || sx.cache != sy.cache || !slices.Equal(sx.samples, sy.samples) {
			return fmt.Errorf("baseline series %d is %+v, want %+v", i, sy, sx)
		}
	}
	for i := range x.sketches {
		var bx, by []byte
		x.sketches[i].sk.Encode(&bx, true)
		y.sketches[i].sk.Encode(&by, true)
		if x.sketches[i].idx != y.sketches[i].idx || string(bx) != string(by) {
			return fmt.Errorf("sketch %d differs", i)
		}
	}
	return nil
}

func sameSet(x, y *dset) bool {
	if !slices.Equal(x.list, y.list) || (x.big == nil) != (y.big == nil) {
		return false
	}
	return x.big == nil || (maps.Equal(x.big.last, y.big.last) && slices.Equal(x.big.per, y.big.per))
}

func samePresence(a, b *Engine) error {
	for i, x := range a.present {
		y := b.present[i]
		if (x == nil) != (y == nil) {
			return fmt.Errorf("rule %d: presence filter missing", i)
		}
		if x != nil && (x.period != y.period || x.epoch != y.epoch || !slices.Equal(x.cur, y.cur) || !slices.Equal(x.prev, y.prev)) {
			return fmt.Errorf("rule %d: presence filters differ", i)
		}
	}
	return nil
}
