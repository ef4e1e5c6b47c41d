package simulate

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// Attacks spread over many addresses, and attacks on one account.

// loginKey is the truth key of attacks seen only in the login endpoint's
// aggregate.
func loginKey() []map[string]string {
	return []map[string]string{{"service": "auth", "endpoint": "/v1/auth/login"}}
}

func planBotnet(p *planner, r *rand.Rand, it *item) {
	n := between(r, 1000, 5000)
	addrs := p.botnet(r, n)
	valid, luck := uniform(r, 0.1, 0.4), uniform(r, 0, 0.005)
	it.dur, it.baseline, it.keys = seconds(uniform(r, 300, 1200)), true, loginKey()
	it.services = []*service{p.w.cat.byName["auth"]}
	rate := float64(n) / it.dur.Seconds()
	setParams(it, "addresses", n, "rate_per_s", rate, "valid_share", valid, "success_per_try", luck)
	it.build = func(it *item, r *rand.Rand) []stepper {
		g := guesses(p.w, r, it, guessing{actor: actor{client: "web-app"}, rate: 1, sigma: 1, rotate: true, // each bot its own browser
			user: p.leaked(it, valid), luck: luck, addr: func(_ *rand.Rand, i int) netip.Addr { return addrs[i%n] }})
		tries := g[0].(*paced)
		tries.max = n
		tries.gap = func() time.Duration { return spread(r, tries.at, it.end, n-tries.n) }
		return g
	}
}

// botnet allocates n addresses of residential networks, each in its own
// /24.
func (p *planner) botnet(r *rand.Rand, n int) []netip.Addr {
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = p.alloc.host(atBotnet)
	}
	return addrs
}

func planDistributed(p *planner, r *rand.Rand, it *item) {
	target := p.targets(r, 1)[0]
	addrs := p.botnet(r, between(r, 10, 60))
	rate, via := p.rate(uniform(r, 0.2, 2)), p.authRoute(r, it)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 180, 900)), p.early(), userKey(target)
	setParams(it, "user", target, "addresses", len(addrs), "rate_per_s", rate)
	it.build = func(it *item, r *rand.Rand) []stepper {
		return guesses(p.w, r, it, guessing{actor: actor{ua: pick(r, browserAgents), client: "web-app"}, rate: rate, sigma: 0.8, via: via,
			user: cycle([]string{target}), addr: func(r *rand.Rand, _ int) netip.Addr { return pick(r, addrs) }})
	}
}

// planTakeover is a distributed attack on an account whose owner uses it
// regularly from home, then a success from an address that never failed,
// and the attacker's use of the account. The owner's own sessions are
// background: their key is the user's, so a rule must tell them apart.
func planTakeover(p *planner, r *rand.Rand, it *item) {
	idx := p.w.pop.reserve(r, 1, netHome4, false)
	if len(idx) == 0 {
		idx = p.w.pop.reserve(r, 1, 0, true)
	}
	owner := &p.w.pop.users[idx[0]]
	addrs := p.botnet(r, between(r, 10, 60))
	fresh := p.alloc.host(atFresh)
	rate := p.rate(uniform(r, 0.1, 1))
	attack, wait := seconds(uniform(r, 180, 600)), seconds(uniform(r, 10, 300))
	every := uniform(r, 5, 15)
	it.dur, it.earliest, it.keys = attack+wait+time.Minute, p.early(), userKey(owner.name)
	setParams(it, "user", owner.name, "addresses", len(addrs), "rate_per_s", rate, "fresh_address", fresh.String(),
		"success_after_s", attack+wait, "owner_address", ownerAddr(owner).String(), "owner_session_every_min", every)
	it.build = func(it *item, r *rand.Rand) []stepper {
		phase := *it
		phase.end = it.start + attack
		g := guesses(p.w, r, &phase, guessing{actor: actor{ua: pick(r, browserAgents), client: "web-app"}, rate: rate, sigma: 0.8,
			user: cycle([]string{owner.name}), addr: func(r *rand.Rand, _ int) netip.Addr { return pick(r, addrs) }})
		thief := actor{addr: fresh, ua: pick(r, browserAgents), client: "web-app"}
		g = append(g, accountUse(p.w, r, p.w.cat.login, thief, owner.name, it.start+attack+wait, it.end))
		return append(g, asBackground(p.ownerSessions(r, owner, every)))
	}
}

func ownerAddr(u *user) netip.Addr {
	if u.kind == netHome4 || u.kind == netOffice {
		return u.home
	}
	return netip.Addr{}
}

// ownerSessions is u's own traffic over the whole scenario: a session
// every few minutes from their usual address.
func (p *planner) ownerSessions(r *rand.Rand, u *user, everyMin float64) *sessionGen {
	g := newSessionGen(p.w, r, 0, p.sc.horizon, func(time.Duration) float64 { return 1 / (everyMin * 60) })
	g.user = func(*rand.Rand) *user { return u }
	if a := ownerAddr(u); a.IsValid() {
		g.addr = func(*rand.Rand, *user) netip.Addr { return a }
	}
	return g
}

// planHoneyAccount is 1-3 login attempts as one of the operator's honey
// accounts, from one address.
func planHoneyAccount(p *planner, r *rand.Rand, it *item) {
	honey := pick(r, p.o.HoneyAccounts)
	a := p.attacker(r)
	tries := between(r, 1, 3)
	rate := uniform(r, 0.05, 1)
	it.dur, it.earliest, it.keys = countDur(tries, rate), p.early(), userKey(honey)
	setParams(it, "user", honey, "tries", tries, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		g := guesses(p.w, r, it, guessing{actor: a, rate: rate, sigma: 0.3, user: cycle([]string{honey})})
		g[0].(*paced).max = tries
		return g
	}
}

// bg marks a stepper of an item whose events are background traffic.
type bg struct{ stepper }

func asBackground(s stepper) stepper { return bg{s} }
