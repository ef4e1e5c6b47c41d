package simulate

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// paced emits events from start until end (or until max events, when max
// is set), gap apart; fill makes event i. Most attacks are one.
type paced struct {
	at, end time.Duration
	n, max  int
	gap     func() time.Duration
	fill    func(ev *event.Event, i int)
}

func (p *paced) next() time.Duration {
	if p.at >= p.end || (p.max > 0 && p.n >= p.max) {
		return never
	}
	return p.at
}

func (p *paced) emit(ev *event.Event) {
	p.fill(ev, p.n)
	p.n++
	p.at += p.gap()
}

// step is one event of a script.
type step struct {
	at   time.Duration
	fill func(ev *event.Event)
}

// script emits a short, fixed list of events; steps may be added in any
// order and are sorted (stably) by time.
type script struct {
	steps []step
	i     int
}

func newScript(steps []step) *script {
	slices.SortStableFunc(steps, func(a, b step) int { return cmp.Compare(a.at, b.at) })
	return &script{steps: steps}
}

func (s *script) next() time.Duration {
	if s.i >= len(s.steps) {
		return never
	}
	return s.steps[s.i].at
}

func (s *script) emit(ev *event.Event) {
	s.steps[s.i].fill(ev)
	s.i++
}

// actor is who sends an attack's or a pattern's requests.
type actor struct {
	addr   netip.Addr
	ua     string
	client string
	user   string
}

func (a actor) set(ev *event.Event) {
	ev.SourceIP, ev.UserAgent, ev.ClientID, ev.User = a.addr, a.ua, a.client, a.user
}

// fillLogin fills a login attempt as user from a.
func fillLogin(ev *event.Event, r *rand.Rand, w *world, a actor, user string, status int) {
	fillAuth(ev, r, w.cat.login, a, user, status)
}

// fillAuth fills an attempt to authenticate as user at ep (the login, or
// the token endpoint's password grant) from a.
func fillAuth(ev *event.Event, r *rand.Rand, ep *endpoint, a actor, user string, status int) {
	fillRequest(ev, r, ep, ep.route, status)
	a.set(ev)
	ev.User = user
}

// loginClient is the client id an attack tool sends with logins: often the
// web app's public one, copied from the browser.
func loginClient(r *rand.Rand) string {
	if chance(r, 0.5) {
		return "web-app"
	}
	return ""
}
