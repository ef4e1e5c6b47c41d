package simulate

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// effectKind is how an effect changes a service's answers.
type effectKind uint8

const (
	fxErrors  effectKind = iota // extra 5xx answers
	fxOutage                    // most requests fail
	fxLatency                   // every answer is slower
	fxBlip                      // every request fails with 503 (a deploy)
)

// effect changes every answer of one service during a window, whoever
// sent the request: an error spike, an outage, a slowdown, a deploy blip.
type effect struct {
	kind       effectKind
	service    string
	start, end time.Duration
	p          float64 // fxErrors: extra 5xx probability; fxOutage: failing share; fxLatency: factor
	tag        int
}

// apply changes ev (at offset at) by every effect active on its service;
// a background event that an effect changed takes the effect's tag.
func apply(fx []effect, r *rand.Rand, ev *event.Event, at time.Duration, tag int) int {
	for i := range fx {
		f := &fx[i]
		if f.service != ev.Service || at < f.start || at >= f.end {
			continue
		}
		if changeByEffect(f, r, ev) && tag == tagBackground {
			tag = f.tag
		}
	}
	return tag
}

func changeByEffect(f *effect, r *rand.Rand, ev *event.Event) bool {
	switch f.kind {
	case fxErrors:
		if ev.Status >= 500 || !chance(r, f.p) {
			return false
		}
		ev.Status = serverError(r)
	case fxOutage:
		if !chance(r, f.p) {
			return false
		}
		ev.Status = pickStatus(r.Float64(), 503, 0.25, 502, 0.25, 504, 0, 0)
	case fxLatency:
		ev.LatencyMS = float64(int64(ev.LatencyMS*f.p*logNormal(r, 1, 0.15)*100)) / 100
		return true
	case fxBlip:
		ev.Status = 503
	}
	switch ev.Status {
	case 504:
		ev.LatencyMS = float64(int64(logNormal(r, 30_000, 0.05)))
	case 502, 503:
		ev.LatencyMS = float64(int64(logNormal(r, 3, 0.6)*100)) / 100
	}
	return true
}

// tagBackground is the tag of events that belong to no attack or pattern.
const tagBackground = -1

// Stream generates a scenario's events in time order. Memory stays
// bounded by the number of sessions active at once.
type Stream struct {
	sc      *Scenario
	q       queue
	fx      []effect
	r       *rand.Rand
	seq     uint64
	prefix  string
	horizon time.Duration
}

// Stream returns a new stream of the scenario's events; every stream of a
// scenario yields the same events.
func (sc *Scenario) Stream() *Stream {
	o := sc.opts
	s := &Stream{sc: sc, r: newRand(o.Seed, "effects"), horizon: sc.horizon,
		prefix: "sim-" + strconv.FormatUint(o.Seed, 16) + "-"}
	if o.Rate > 0 {
		for _, b := range background(sc.w, o.Seed, o.Rate, sc.horizon, sc.mod) {
			s.q.add(b, tagBackground)
		}
	}
	for tag, it := range sc.items {
		r := newRand(o.Seed, "run/"+it.id)
		if it.build != nil {
			for _, st := range it.build(it, r) {
				if b, ok := st.(bg); ok {
					s.q.add(b.stepper, tagBackground)
				} else {
					s.q.add(st, tag)
				}
			}
		}
		if it.effects != nil {
			for _, f := range it.effects(it, r) {
				f.tag = tag
				s.fx = append(s.fx, f)
			}
		}
	}
	return s
}

// Next fills ev with the next event and returns the index (in Items) of
// the attack or pattern it belongs to, or -1 for background; ok is false
// when the scenario is over.
func (s *Stream) Next(ev *event.Event) (tag int, ok bool) {
	at := s.q.peek()
	if at >= s.horizon {
		return 0, false
	}
	ev.Reset()
	tag = s.q.pop(ev)
	ev.Time = s.sc.opts.Start.Add(at.Truncate(time.Millisecond))
	s.seq++
	ev.RequestID = s.prefix + strconv.FormatUint(s.seq, 36)
	return apply(s.fx, s.r, ev, at, tag), true
}

// background returns the steppers of ordinary traffic: user sessions for
// about 95 % of rate events per second, partner integrations for 5 %,
// and the internet's scanners.
func background(w *world, seed uint64, rate float64, horizon time.Duration, mod *modulation) []stepper {
	perSecond := 0.95 * rate / w.perVisit
	sessions := newSessionGen(w, newRand(seed, "background"), 0, horizon,
		func(t time.Duration) float64 { return perSecond * mod.at(t) })
	out := []stepper{sessions, newNoise(w, newRand(seed, "noise"), horizon)}
	r := newRand(seed, "partners")
	n := between(r, 4, 8)
	weights := make([]float64, n)
	total := 0.0
	for i := range weights {
		weights[i] = uniform(r, 0.3, 1.5)
		total += weights[i]
	}
	for i, wt := range weights {
		out = append(out, newPartner(w, newRand(seed, "partner/"+strconv.Itoa(i)), i, 0.05*rate*wt/total, horizon))
	}
	return out
}
