package simulate

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// Benign patterns made of ordinary user sessions: many users on one
// address or network, users who fail to log in for innocent reasons, and
// surges of ordinary traffic. Their users are reserved: the background
// does not use them.

// natUsers reserves up to n users (at most a tenth of the population).
func (p *planner) natUsers(r *rand.Rand, n int) []int {
	return p.w.pop.reserve(r, min(n, len(p.w.pop.users)/10), 0, true)
}

// crowd returns a session generator over the whole scenario for users,
// each starting perHour sessions an hour on average, from addr.
func (p *planner) crowd(r *rand.Rand, users []int, perHour float64, addr func(*rand.Rand, *user) netip.Addr) *sessionGen {
	rate := float64(len(users)) * perHour / 3600
	g := newSessionGen(p.w, r, 0, p.sc.horizon, func(time.Duration) float64 { return rate })
	g.user = func(r *rand.Rand) *user { return &p.w.pop.users[pick(r, users)] }
	g.addr = addr
	return g
}

func planOfficeNAT(p *planner, r *rand.Rand, it *item) {
	users := p.natUsers(r, between(r, 500, 3000))
	addr := p.alloc.host(bnOffice)
	perHour := uniform(r, 1, 2)
	it.whole, it.keys = true, ipKey(addr)
	setParams(it, "users", len(users), "sessions_per_user_hour", perHour, "source_ip", addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return []stepper{p.crowd(r, users, perHour, func(*rand.Rand, *user) netip.Addr { return addr })}
	}
}

func planCarrierNAT(p *planner, r *rand.Rand, it *item) {
	users := p.natUsers(r, between(r, 1000, 5000))
	net := p.alloc.prefix(func(r *rand.Rand) netip.Prefix { return net24(r, bnCarrier) })
	size := pick(r, []int{16, 32, 64, 128, 254})
	pool := make([]netip.Addr, size)
	first := net.Addr().As4()
	for i := range pool {
		first[3] = byte(1 + i)
		pool[i] = netip.AddrFrom4(first)
	}
	it.whole, it.keys = true, prefixKey(net)
	for _, a := range pool {
		it.keys = append(it.keys, map[string]string{"source_ip": a.String()})
	}
	setParams(it, "users", len(users), "pool_addresses", size, "source_prefix", net.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return []stepper{p.crowd(r, users, 1, func(r *rand.Rand, _ *user) netip.Addr { return pick(r, pool) })}
	}
}

// visitor is one reserved user with addresses of their own.
func (p *planner) visitor(r *rand.Rand) *user {
	idx := p.w.pop.reserve(r, 1, 0, true)
	return &p.w.pop.users[idx[0]]
}

// visit is a login after fails mistyped passwords (from addr), then n
// API calls, as steps from t; it returns the steps and the time after the
// last.
func (p *planner) visit(r *rand.Rand, u *user, addr netip.Addr, t time.Duration, fails, n int) ([]step, time.Duration) {
	a := actor{addr: addr, ua: u.ua, client: u.client, user: u.name}
	var steps []step
	for i := range fails + 1 {
		status := 401
		if i == fails {
			status = 200
		}
		steps = append(steps, step{t, func(ev *event.Event) { fillLogin(ev, r, p.w, a, u.name, status) }})
		t += typoGap(r)
	}
	for range n {
		ep := p.w.cat.call(r)
		steps = append(steps, step{t, func(ev *event.Event) {
			fillSessionCall(ev, r, ep, u)
			a.set(ev)
		}})
		t += seconds(min(120, logNormal(r, 5, 1)))
	}
	return steps, t
}

// failures are n failed logins of u from addr from t on.
func (p *planner) failures(r *rand.Rand, u *user, addr netip.Addr, t time.Duration, n int) ([]step, time.Duration) {
	steps, t := p.visit(r, u, addr, t, n, 0)
	return steps[:n], t
}

func planTypoUser(p *planner, r *rand.Rand, it *item) {
	u := p.visitor(r)
	addr := p.alloc.host(bnHome)
	it.dur, it.earliest, it.keys = 10*time.Minute, p.early(), append(userKey(u.name), ipKey(addr)...)
	setParams(it, "user", u.name, "failures", 4, "source_ip", addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		steps, _ := p.visit(r, u, addr, it.start, 4, between(r, 3, 15))
		return []stepper{newScript(within(steps, it.end))}
	}
}

// within drops the steps at or after end.
func within(steps []step, end time.Duration) []step {
	out := steps[:0]
	for _, s := range steps {
		if s.at < end {
			out = append(out, s)
		}
	}
	return out
}

// planTraveller is a user who cannot remember a new password: failures
// from home, then from the phone, then from the hotel, where it works.
func planTraveller(p *planner, r *rand.Rand, it *item) {
	u := p.visitor(r)
	home, hotel := p.alloc.host(bnHome), p.alloc.host(bnHotel)
	phone := p.alloc.addr(func(r *rand.Rand) netip.Addr { return in64(r, net64(r, bnMobile6)) })
	fails := []int{between(r, 1, 2), between(r, 1, 2), between(r, 1, 2)}
	gap1, gap2 := seconds(uniform(r, 300, 1200)), seconds(uniform(r, 300, 1200))
	it.dur, it.earliest, it.keys = gap1+gap2+5*time.Minute, p.early(), userKey(u.name)
	setParams(it, "user", u.name, "failures", fails, "addresses", []string{home.String(), phone.String(), hotel.String()})
	it.build = func(it *item, r *rand.Rand) []stepper {
		s1, _ := p.failures(r, u, home, it.start, fails[0])
		s2, _ := p.failures(r, u, phone, it.start+gap1, fails[1])
		s3, _ := p.visit(r, u, hotel, it.start+gap1+gap2, fails[2], between(r, 2, 8))
		return []stepper{newScript(within(append(append(s1, s2...), s3...), it.end))}
	}
}

// planIPv6Privacy is a household of 1-4 people on one /64 whose devices
// take a new temporary address (RFC 8981) every session and now and then
// within one.
func planIPv6Privacy(p *planner, r *rand.Rand, it *item) {
	var users []*user
	for range between(r, 1, 4) {
		users = append(users, p.visitor(r))
	}
	net := p.alloc.prefix(func(r *rand.Rand) netip.Prefix { return net64(r, bnHome6) })
	every := uniform(r, 2, 6)
	it.whole, it.keys = true, prefixKey(net)
	var names []string
	for _, u := range users {
		names = append(names, u.name)
		u.kind = netHome6 // their devices move between temporary addresses
		it.keys = append(it.keys, userKey(u.name)...)
	}
	setParams(it, "users", names, "source_prefix", net.String(), "session_every_min", every)
	it.build = func(it *item, r *rand.Rand) []stepper {
		g := p.ownerSessions(r, users[0], every/float64(len(users)))
		g.user = func(r *rand.Rand) *user { return pick(r, users) }
		g.addr = func(r *rand.Rand, _ *user) netip.Addr { return in64(r, net) }
		g.arrival, g.spawn = seconds(uniform(r, 0, 60)), true // someone is home from the start
		return []stepper{g}
	}
}

// planSurge is a service at 3-10 times its volume (a campaign, a partner's
// backfill, a login rush on auth) with its usual error share.
func planSurge(p *planner, r *rand.Rand, it *item) {
	factor := uniform(r, 3, 10)
	it.dur, it.earliest, it.services = seconds(uniform(r, 120, 600)), p.early(), p.anyService()
	it.keyFn = func(it *item) {
		it.keys = []map[string]string{{"service": it.service.name}}
		if it.service.name == "auth" {
			it.keys = append(it.keys, loginKey()...)
		}
		it.params["service"] = it.service.name
	}
	setParams(it, "factor", factor)
	it.build = func(it *item, r *rand.Rand) []stepper {
		w := p.w
		visits := 0.95 * p.o.Rate / w.perVisit // background sessions per second
		rate := (factor - 1) * visits * w.perService[it.service.name] / w.perCalls
		g := newSessionGen(w, r, it.start, it.end, func(time.Duration) float64 { return rate })
		if it.service.name == "auth" {
			rate = (factor - 1) * visits // more sessions: a login rush
		} else {
			g.focus = it.service
		}
		g.arrival, g.spawn = it.start, false
		g.advance()
		return []stepper{g}
	}
}
