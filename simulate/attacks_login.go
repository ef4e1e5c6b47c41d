package simulate

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// Password guessing from one address or one network. Each spec draws the
// attack's parameters (the ranges docs/simulate.md lists), its truth key,
// and how to build its events.

func planBruteForce(p *planner, r *rand.Rand, it *item) {
	rate := p.rate(uniform(r, 0.5, 5))
	users := p.targets(r, between(r, 1, 3))
	a := p.attacker(r)
	found, via := chance(r, 0.25), p.authRoute(r, it)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 120, 600)), p.early(), ipKey(a.addr)
	setParams(it, "rate_per_s", rate, "users", users, "source_ip", a.addr.String(), "succeeds", found)
	it.build = func(it *item, r *rand.Rand) []stepper {
		g := guessing{actor: a, rate: rate, sigma: 0.3, user: cycle(users), via: via}
		if found {
			g.success, g.winner, g.stop = it.end-seconds(uniform(r, 5, 30)), users[0], true
		}
		return guesses(p.w, r, it, g)
	}
}

func planLowAndSlow(p *planner, r *rand.Rand, it *item) {
	perMin := p.rate(uniform(r, 0.7, 3)/60) * 60
	users := p.targets(r, between(r, 1, 2))
	a, via := p.attacker(r), p.authRoute(r, it)
	a.ua = pick(r, browserAgents)
	it.dur, it.tail, it.earliest, it.keys = seconds(uniform(r, 45*60, 60*60)), 0, min(time.Minute, p.early()), ipKey(a.addr)
	setParams(it, "rate_per_min", perMin, "users", users, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return guesses(p.w, r, it, guessing{actor: a, rate: perMin / 60, sigma: 0.5, user: cycle(users), via: via})
	}
}

func planStuffing(p *planner, r *rand.Rand, it *item) {
	rate := p.rate(uniform(r, 1, 10))
	valid, luck := uniform(r, 0.05, 0.4), uniform(r, 0, 0.003)
	a, rotate, via := p.attacker(r), chance(r, 0.5), p.authRoute(r, it)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 120, 600)), p.early(), ipKey(a.addr)
	setParams(it, "rate_per_s", rate, "valid_share", valid, "success_per_try", luck, "source_ip", a.addr.String(), "rotates_user_agent", rotate)
	it.build = func(it *item, r *rand.Rand) []stepper {
		return guesses(p.w, r, it, guessing{actor: a, rate: rate, sigma: 0.4, user: p.leaked(it, valid), luck: luck, rotate: rotate, via: via})
	}
}

func planSpraying(p *planner, r *rand.Rand, it *item) {
	every := uniform(r, 2, 15)
	rate := p.rate(1 / every)
	a, via := p.attacker(r), p.authRoute(r, it)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 300, 1200)), p.early(), ipKey(a.addr)
	setParams(it, "seconds_per_try", 1/rate, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return guesses(p.w, r, it, guessing{actor: a, rate: rate, sigma: 0.3, user: p.enumerated(it), via: via})
	}
}

// planSpraySuccess is spraying or stuffing from one address in which one
// guess succeeds, after 20-60 % of the attack; the attacker uses the
// account at once, and half the time keeps going.
func planSpraySuccess(p *planner, r *rand.Rand, it *item) {
	spraying := chance(r, 0.5)
	rate := p.rate(uniform(r, 1, 10))
	if spraying {
		rate = p.rate(1 / uniform(r, 2, 15))
	}
	winner := p.targets(r, 1)[0]
	a := p.attacker(r)
	share, stop := uniform(r, 0.2, 0.6), chance(r, 0.5)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 300, 900)), p.early(), ipKey(a.addr)
	setParams(it, "mode", map[bool]string{true: "spraying", false: "stuffing"}[spraying], "rate_per_s", rate,
		"winner", winner, "success_at_share", share, "stops_after_success", stop, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		at := it.start + time.Duration(share*float64(it.end-it.start))
		return guesses(p.w, r, it, guessing{actor: a, rate: rate, sigma: 0.35, user: p.leaked(it, map[bool]float64{true: 1, false: 0.2}[spraying]),
			success: at, winner: winner, stop: stop})
	}
}

// planRotation is brute force or stuffing whose address changes every 1-10
// tries inside one /64 (v6) or /24.
func planRotation(v6 bool) func(*planner, *rand.Rand, *item) {
	return func(p *planner, r *rand.Rand, it *item) {
		var net netip.Prefix
		if v6 {
			net = p.alloc.prefix(func(r *rand.Rand) netip.Prefix { return net64(r, uint32(atRot6)<<16|uint32(r.IntN(1<<16))) })
		} else {
			net = p.alloc.prefix(func(r *rand.Rand) netip.Prefix { return net24(r, atRot4) })
		}
		rate, every := p.rate(uniform(r, 0.5, 5)), between(r, 1, 10)
		stuffing := chance(r, 0.5)
		users := p.targets(r, between(r, 1, 3))
		a, via := actor{ua: attackAgent(r), client: loginClient(r)}, p.authRoute(r, it)
		it.dur, it.earliest, it.keys = seconds(uniform(r, 120, 600)), p.early(), prefixKey(net)
		setParams(it, "rate_per_s", rate, "tries_per_address", every, "mode", map[bool]string{true: "stuffing", false: "brute-force"}[stuffing],
			"source_prefix", net.String())
		it.build = func(it *item, r *rand.Rand) []stepper {
			g := guessing{actor: a, rate: rate, sigma: 0.3, user: cycle(users), addr: rotating(net, every), via: via}
			if stuffing {
				g.user = p.leaked(it, 0.2)
			}
			return guesses(p.w, r, it, g)
		}
	}
}

// rotating returns an address function that moves to a new address of
// net every n tries.
func rotating(net netip.Prefix, n int) func(*rand.Rand, int) netip.Addr {
	var cur netip.Addr
	return func(r *rand.Rand, i int) netip.Addr {
		if i%n == 0 {
			if net.Addr().Is4() {
				cur = in24(r, net)
			} else {
				cur = in64(r, net)
			}
		}
		return cur
	}
}

var wellKnownNames = []string{"admin", "root", "test", "administrator", "guest", "oracle", "user",
	"support", "demo", "postgres", "ubuntu", "ftpuser", "info", "sa", "operator", "manager",
	"webmaster", "sysadmin", "admin@acme-corp.com", "test@acme-corp.com", "backup", "api", "dev", "qa"}

func planWellKnown(p *planner, r *rand.Rand, it *item) {
	rate := p.rate(uniform(r, 0.2, 2))
	names := pickN(r, wellKnownNames, between(r, 5, 15))
	var tries []string
	for _, n := range names {
		for range between(r, 1, 5) {
			tries = append(tries, n)
		}
	}
	r.Shuffle(len(tries), func(i, j int) { tries[i], tries[j] = tries[j], tries[i] })
	a := p.attacker(r)
	it.dur, it.earliest, it.keys = countDur(len(tries), rate), p.early(), ipKey(a.addr)
	setParams(it, "rate_per_s", rate, "names", names, "tries", len(tries), "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		g := guesses(p.w, r, it, guessing{actor: a, rate: rate, sigma: 0.3, user: cycle(tries)})
		g[0].(*paced).max = len(tries)
		return g
	}
}

// pickN returns n distinct elements of s in a random order.
func pickN[T any](r *rand.Rand, s []T, n int) []T {
	idx := r.Perm(len(s))[:min(n, len(s))]
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = s[j]
	}
	return out
}

// setParams records an item's drawn parameters (name, value pairs) for
// the truth file, rounding floats.
func setParams(it *item, kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if f, ok := v.(float64); ok {
			v = round4(f)
		}
		it.params[kv[i].(string)] = v
	}
}
