package simulate

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// place gives every item its time: items keyed by a service first (the
// longest first), each in a service no other such item uses at that time
// (with a gap, so one's alerts resolve before the next starts), then the
// others at random times after their warm-up. In live mode every item
// starts as early as it may.
func (p *planner) place() error {
	r := newRand(p.o.Seed, "place")
	order := slices.Clone(p.sc.items)
	slices.SortStableFunc(order, func(a, b *item) int {
		if (a.services != nil) != (b.services != nil) {
			if a.services != nil {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.dur, a.dur)
	})
	for _, it := range order {
		if err := p.placeOne(r, it); err != nil {
			return err
		}
		if it.keyFn != nil {
			it.keyFn(it)
		}
		it.params["duration_s"] = round3((it.end - it.start).Seconds())
	}
	return nil
}

// laneGap separates items keyed by the same service.
func (p *planner) laneGap() time.Duration { return min(10*time.Minute, p.sc.horizon/8) }

func (p *planner) placeOne(r *rand.Rand, it *item) error {
	h := p.sc.horizon
	if it.whole {
		it.start, it.end, it.dur = 0, h, h
		return nil
	}
	lo, hi := it.earliest, h-it.tail-it.dur
	if !p.o.Live && hi < lo {
		it.dur, hi = h-it.tail-lo, lo // shorten it to fit the scenario
		if it.dur < 10*time.Second {
			return fmt.Errorf("no room for %s after its warm-up of %s: use a longer --duration", it.name, lo)
		}
	}
	cands := slices.Clone(it.services)
	r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	if cands == nil {
		cands = []*service{nil}
	}
	for try := range 200 {
		start := lo
		if p.o.Live {
			start = lo + time.Duration(try)*p.laneGap()/2
		} else if hi > lo {
			start = lo + time.Duration(r.Int64N(int64(hi-lo)))
		}
		for _, s := range cands {
			if p.free(s, start, it.dur) {
				it.service, it.start, it.end = s, start, start+it.dur
				if !p.o.Live {
					it.end = min(h, it.end)
				}
				return nil
			}
		}
	}
	return fmt.Errorf("no room for %s: every service it may hit is busy with another item; use a longer --duration or fewer --attacks/--benign", it.name)
}

// free reports whether no placed item keyed by s overlaps [start,
// start+dur) with the lane gap around it.
func (p *planner) free(s *service, start, dur time.Duration) bool {
	if s == nil {
		return true
	}
	gap := p.laneGap()
	for _, o := range p.sc.items {
		if o.service == s && start < o.end+gap && o.start < start+dur+gap {
			return false
		}
	}
	return true
}
