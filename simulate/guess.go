package simulate

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// guessing describes password guessing against the login endpoint: who
// is tried in which order, from which address, how fast, and whether and
// when a guess succeeds.
type guessing struct {
	actor   actor
	rate    float64                              // tries per second
	sigma   float64                              // jitter of the gaps (log-normal)
	user    func(r *rand.Rand, i int) string     // user of try i
	addr    func(r *rand.Rand, i int) netip.Addr // address of try i; nil: actor's
	luck    float64                              // chance that a try succeeds (stuffing's few valid pairs)
	success time.Duration                        // offset of the success, 0: none
	winner  string                               // the user whose password was found
	stop    bool                                 // the attack stops at the success
	rotate  bool                                 // a new browser user agent every try (stuffing kits)
	via     *endpoint                            // where the guesses go: the login unless set
}

// guesses returns the steppers of g over the item's window: the tries,
// and when a guess succeeds, the success and the attacker's use of the
// account right after it.
func guesses(w *world, r *rand.Rand, it *item, g guessing) []stepper {
	if g.via == nil {
		g.via = w.cat.login
	}
	end := it.end
	if g.success > 0 && g.stop {
		end = g.success
	}
	tries := &paced{at: it.start, end: end, gap: func() time.Duration { return jitterGap(r, g.rate, g.sigma) }}
	tries.fill = func(ev *event.Event, i int) {
		status := 401
		if g.luck > 0 && chance(r, g.luck) {
			status = 200
		}
		fillAuth(ev, r, g.via, g.actor, g.user(r, i), status)
		if g.addr != nil {
			ev.SourceIP = g.addr(r, i)
		}
		if g.rotate {
			ev.UserAgent = pick(r, browserAgents)
		}
	}
	out := []stepper{tries}
	if g.success > 0 {
		out = append(out, accountUse(w, r, g.via, g.actor, g.winner, g.success, it.end))
	}
	return out
}

// accountUse is a successful login as user at t (at via), then what an
// attacker does with the account: reads the profile and payment methods,
// changes the e-mail address, adds a payment method (all before end).
func accountUse(w *world, r *rand.Rand, via *endpoint, a actor, user string, t, end time.Duration) *script {
	a.user = user
	steps := []step{{t, func(ev *event.Event) { fillAuth(ev, r, via, a, user, 200) }}}
	uses := [][3]string{{"accounts", "GET", "/v1/me"}, {"billing", "GET", "/v1/payment-methods"},
		{"accounts", "PATCH", "/v1/me"}, {"billing", "POST", "/v1/payment-methods"}, {"orders", "GET", "/v1/orders"}}
	for i := range between(r, 2, len(uses)) {
		t += seconds(uniform(r, 1, 10))
		if t >= end {
			break
		}
		ep := w.cat.endpoint(uses[i][0], uses[i][1], uses[i][2])
		steps = append(steps, step{t, func(ev *event.Event) {
			fillRequest(ev, r, ep, ep.route, okStatus(ep))
			a.set(ev)
		}})
	}
	return newScript(steps)
}

// okStatus is ep's success status.
func okStatus(ep *endpoint) int {
	switch ep.kind {
	case kCreate:
		return 201
	case kAction:
		return 202
	case kDelete, kLogout:
		return 204
	}
	return 200
}

var leakDomains = []string{"yahoo.com", "aol.com", "hotmail.co.uk", "mail.ru", "gmail.com", "live.com",
	"comcast.net", "yandex.ru", "qq.com", "free.fr", "libero.it", "rambler.ru"}

// leaked returns the user names of a leaked credential list: one of ours
// with probability valid (each at most once), otherwise an address we have
// never seen. Call it when building a stream: it holds the list's state.
func (p *planner) leaked(it *item, valid float64) func(r *rand.Rand, i int) string {
	walk := p.w.pop.walk(newRand(p.o.Seed, "walk/"+it.id))
	return func(r *rand.Rand, i int) string {
		if chance(r, valid) {
			if u := walk.user(); u != "" {
				return u
			}
		}
		return pick(r, firstNames) + pick(r, []string{".", "_", ""}) + pick(r, lastNames) +
			strconv.Itoa(1950+r.IntN(60)) + "x" + strconv.Itoa(i) + "@" + pick(r, leakDomains)
	}
}

// enumerated returns the valid users of the population in a random order,
// each once: what a sprayer has enumerated.
func (p *planner) enumerated(it *item) func(r *rand.Rand, i int) string {
	return p.leaked(it, 1)
}

// cycle returns a user function that tries users in turn.
func cycle(users []string) func(*rand.Rand, int) string {
	return func(_ *rand.Rand, i int) string { return users[i%len(users)] }
}

// targets reserves n users of the population as an attack's targets:
// real accounts, with no background traffic of their own.
func (p *planner) targets(r *rand.Rand, n int) []string {
	var out []string
	for _, i := range p.w.pop.reserve(r, n, 0, true) {
		out = append(out, p.w.pop.users[i].name)
	}
	return out
}

// attacker returns a single-address attacker from the attack ranges.
func (p *planner) attacker(r *rand.Rand) actor {
	return actor{addr: p.alloc.host(atSingle), ua: attackAgent(r), client: loginClient(r)}
}

func ipKey(a netip.Addr) []map[string]string {
	return []map[string]string{{"source_ip": a.String()}}
}

func prefixKey(p netip.Prefix) []map[string]string {
	return []map[string]string{{"source_prefix": p.String()}}
}

func userKey(u string) []map[string]string { return []map[string]string{{"user": u}} }

// authRoute draws where an attack sends its guesses: the login, or one
// time in five the token endpoint's password grant (OAuth ROPC), which
// answers the same way; it records the choice in the item's parameters.
func (p *planner) authRoute(r *rand.Rand, it *item) *endpoint {
	ep := p.w.cat.login
	if chance(r, 0.2) {
		ep = p.w.cat.token
	}
	it.params["endpoint"] = ep.route
	return ep
}
