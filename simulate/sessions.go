package simulate

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// world is what every source of a scenario shares: the API and its users.
type world struct {
	cat      *catalog
	pop      *population
	typoRate float64 // share of logins with at least one mistyped password
	perVisit float64 // mean events of a background session
	perCalls float64 // mean API calls (not auth) of a session
	// perService is the mean events of a background session per service.
	perService map[string]float64
}

// sessionGen starts sessions as a Poisson process whose rate follows
// rate(t), and merges their events. Sessions started before from are run
// silently, so traffic at from is already in its steady state; events at
// or after until are dropped. It is a stepper.
type sessionGen struct {
	w       *world
	r       *rand.Rand
	rate    func(t time.Duration) float64 // sessions per second
	user    func(r *rand.Rand) *user
	addr    func(r *rand.Rand, u *user) netip.Addr
	focus   *service // when set, every API call goes to this service
	from    time.Duration
	until   time.Duration
	arrival time.Duration // of the next session, if spawn
	spawn   bool
	q       queue
	scratch event.Event
}

// warmUp is how long before its window a session generator starts
// sessions, so that the window opens on traffic in its steady state.
const warmUp = 4 * time.Minute

func newSessionGen(w *world, r *rand.Rand, from, until time.Duration, rate func(time.Duration) float64) *sessionGen {
	g := &sessionGen{w: w, r: r, rate: rate, from: from, until: until, arrival: from - warmUp}
	g.user = func(r *rand.Rand) *user { return &w.pop.users[w.pop.pick(r)] }
	g.addr = w.pop.sessionAddr
	g.advance()
	return g
}

// advance draws the next session's start.
func (g *sessionGen) advance() {
	rate := g.rate(g.arrival)
	if g.spawn = rate > 0; !g.spawn {
		g.arrival += time.Second // idle: look again in a second
		return
	}
	g.arrival += expGap(g.r, rate)
}

func (g *sessionGen) next() time.Duration {
	for {
		at := g.q.peek()
		if g.arrival <= at && g.arrival < g.until {
			if g.spawn {
				g.q.add(newSession(g, g.user(g.r), g.arrival), 0)
			}
			g.advance()
			continue
		}
		switch {
		case at == never || at >= g.until:
			return never
		case at < g.from:
			g.scratch.Reset()
			g.q.pop(&g.scratch) // before the window: advance silently
		default:
			return at
		}
	}
}

func (g *sessionGen) emit(ev *event.Event) { g.q.pop(ev) }

// pickCall picks the endpoint of a session's next API call.
func (g *sessionGen) pickCall(r *rand.Rand, u *user) *endpoint {
	if g.focus != nil {
		return focusCall(r, g.focus)
	}
	if u.staff && chance(r, 0.2) {
		return pick(r, g.w.cat.adminEndpoints())
	}
	return g.w.cat.call(r)
}

// focusCall picks an endpoint of s by weight.
func focusCall(r *rand.Rand, s *service) *endpoint {
	total := 0.0
	for _, ep := range s.endpoints {
		total += ep.weight
	}
	x := r.Float64() * total
	for _, ep := range s.endpoints {
		if x -= ep.weight; x < 0 {
			return ep
		}
	}
	return s.endpoints[0]
}

// modulation is the background's slowly varying load: two slow waves and,
// now and then, a burst lasting a minute or so.
type modulation struct {
	a1, a2, p1, p2, f1, f2 float64
	bursts                 []burst
}

type burst struct {
	start, end time.Duration
	amp        float64
}

func newModulation(r *rand.Rand, horizon time.Duration) *modulation {
	m := &modulation{a1: uniform(r, 0.05, 0.15), a2: uniform(r, 0.02, 0.08),
		p1: uniform(r, 0, 2*math.Pi), p2: uniform(r, 0, 2*math.Pi),
		f1: 2 * math.Pi / uniform(r, 1800, 5400), f2: 2 * math.Pi / uniform(r, 300, 900)}
	for t := -warmUp + expGap(r, 1.0/600); t < horizon; t += expGap(r, 1.0/600) {
		d := seconds(uniform(r, 20, maxBurst.Seconds()))
		m.bursts = append(m.bursts, burst{t, t + d, uniform(r, 0.2, 0.6)})
	}
	return m
}

// at returns the load factor at t, around 1.
func (m *modulation) at(t time.Duration) float64 {
	s := t.Seconds()
	v := 1 + m.a1*math.Sin(m.f1*s+m.p1) + m.a2*math.Sin(m.f2*s+m.p2)
	// Bursts are sorted by start and last at most maxBurst: look back from
	// the last one that started by t.
	i := sort.Search(len(m.bursts), func(i int) bool { return m.bursts[i].start > t })
	for j := i - 1; j >= 0 && m.bursts[j].start > t-maxBurst; j-- {
		if t < m.bursts[j].end {
			v += m.bursts[j].amp
		}
	}
	return v
}

// maxBurst is the longest burst of the background.
const maxBurst = 120 * time.Second

// calibrate measures the mean events and API calls of a background
// session, so that the session rate gives the asked event rate.
func (w *world) calibrate(seed uint64) {
	g := newSessionGen(w, newRand(seed, "calibrate"), 0, never, func(time.Duration) float64 { return 0 })
	const n = 2000
	var ev event.Event
	events, calls := 0, 0
	w.perService = map[string]float64{}
	for range n {
		s := newSession(g, g.user(g.r), 0)
		for s.at != never {
			ev.Reset()
			s.emit(&ev)
			events++
			w.perService[ev.Service]++
			if ev.Service != "auth" {
				calls++
			}
		}
	}
	for k := range w.perService {
		w.perService[k] /= n
	}
	w.perVisit, w.perCalls = float64(events)/n, float64(calls)/n
}
