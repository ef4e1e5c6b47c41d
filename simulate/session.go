package simulate

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// phase is where a session is.
type phase uint8

const (
	phLogin   phase = iota // logging in, perhaps after typos
	phRefresh              // renewing a stored session
	phCalls                // calling the API
	phLogout
	phReset // gave up after typos: asks for a password reset
	phDone
)

// tokenTTL is how long an access token lives: longer sessions see a 401
// and refresh.
const tokenTTL = 15 * time.Minute

// session is one visit of one user: a login (with typos now and then) or
// a refresh, then API calls separated by think times and page-load bursts,
// sometimes a logout. It is a stepper.
type session struct {
	g       *sessionGen
	u       *user
	addr    netip.Addr
	at      time.Duration
	ph      phase
	fails   int // failed logins still to come
	giveUp  bool
	calls   int // API calls still to come
	burst   int // calls left in the current page load
	authAt  time.Duration
	expires bool      // the client holds an expiring access token
	pending *endpoint // the call after a CORS preflight or a refresh
}

func newSession(g *sessionGen, u *user, at time.Duration) *session {
	r := g.r
	s := &session{g: g, u: u, at: at, addr: g.addr(r, u), expires: true}
	s.calls = int(min(400, logNormal(r, 8, 1.0)))
	switch {
	case g.focus != nil && g.focus.name != "auth":
		s.ph, s.expires, s.authAt = phCalls, false, at // a surge of calls by clients already signed in
	case u.dev == devCLI:
		s.ph, s.expires, s.authAt = phCalls, false, at // a personal access token
	case (u.dev != devBrowser && chance(r, 0.8)) || chance(r, 0.45):
		s.ph = phRefresh
	default:
		s.startLogin()
	}
	return s
}

// startLogin draws how many times the user mistypes their password.
func (s *session) startLogin() {
	s.ph = phLogin
	s.fails, s.giveUp = drawTypos(s.g.r, s.g.w.typoRate)
}

// drawTypos draws the failed attempts before a login: none mostly; for a
// few percent 1-3, sometimes 4-5, and one in ten of those gives up.
func drawTypos(r *rand.Rand, rate float64) (int, bool) {
	if !chance(r, rate) {
		return 0, false
	}
	n := 1
	switch u := r.Float64(); {
	case u < 0.62:
	case u < 0.84:
		n = 2
	case u < 0.94:
		n = 3
	case u < 0.985:
		n = 4
	default:
		n = 5
	}
	return n, chance(r, 0.1)
}

// typoGap is the time between a failed login and the next attempt.
func typoGap(r *rand.Rand) time.Duration { return seconds(min(60, max(2, logNormal(r, 7, 0.6)))) }

func (s *session) next() time.Duration { return s.at }

func (s *session) emit(ev *event.Event) {
	r, cat := s.g.r, s.g.w.cat
	ev.SourceIP, ev.User, ev.UserAgent, ev.ClientID = s.addr, s.u.name, s.u.ua, s.u.client
	switch s.ph {
	case phLogin:
		s.login(ev)
	case phRefresh:
		if chance(r, 0.03) { // the refresh token expired
			fillRequest(ev, r, cat.refresh, cat.refresh.route, 401)
			s.startLogin()
			s.at += seconds(uniform(r, 0.5, 3))
			return
		}
		fillRequest(ev, r, cat.refresh, cat.refresh.route, 200)
		s.signedIn(seconds(uniform(r, 0.05, 0.4)))
	case phCalls:
		s.call(ev)
	case phLogout:
		fillRequest(ev, r, cat.logout, cat.logout.route, 204)
		s.ph, s.at = phDone, never
	case phReset:
		fillRequest(ev, r, cat.reset, cat.reset.route, 202)
		s.ph, s.at = phDone, never
	}
}

func (s *session) login(ev *event.Event) {
	r, cat := s.g.r, s.g.w.cat
	if s.fails > 0 {
		fillRequest(ev, r, cat.login, cat.login.route, 401)
		s.fails--
		s.at += typoGap(r)
		if s.fails == 0 && s.giveUp {
			s.ph = phReset
		}
		return
	}
	fillRequest(ev, r, cat.login, cat.login.route, 200)
	s.signedIn(seconds(uniform(r, 0.3, 2)))
}

// signedIn moves on to the calls after a login or refresh; in a login
// rush (a surge focused on auth) the session's calls are not part of the
// surge, so it ends there or with a logout.
func (s *session) signedIn(gap time.Duration) {
	s.ph, s.authAt = phCalls, s.at
	if f := s.g.focus; f != nil && f.name == "auth" && s.pending == nil {
		s.ph = phDone
		if chance(s.g.r, 0.2) {
			s.ph = phLogout
		}
	}
	if s.ph == phDone {
		s.at = never
		return
	}
	s.at += gap
}

// call emits one API call, or the 401 of an expired token, or a CORS
// preflight, and schedules the next step.
func (s *session) call(ev *event.Event) {
	r := s.g.r
	if s.calls == 0 && s.pending == nil {
		s.finish(ev)
		return
	}
	ep := s.pending
	if ep == nil {
		ep = s.g.pickCall(r, s.u)
	}
	switch {
	case s.expires && s.at-s.authAt > tokenTTL:
		fillRequest(ev, r, ep, ep.path(r, false), 401)
		s.ph, s.pending = phRefresh, ep
		s.at += seconds(uniform(r, 0.05, 0.3))
		return
	case s.pending == nil && s.u.dev == devBrowser && ep.method != "GET" && chance(r, 0.3):
		fillRequest(ev, r, ep, ep.path(r, false), 204)
		ev.Method, ev.LatencyMS = "OPTIONS", logNormal(r, 1.5, 0.4)
		s.pending = ep
		s.at += seconds(uniform(r, 0.02, 0.08))
		return
	}
	s.pending = nil
	s.calls--
	fillSessionCall(ev, r, ep, s.u)
	if s.u.moves() && chance(r, 0.01) {
		s.addr = s.g.addr(r, s.u) // Wi-Fi to mobile data, or a new privacy address
	}
	s.at += s.thinkTime()
}

// fillSessionCall fills an ordinary call by u: staff may use the admin
// endpoints, an old Android build sometimes sends PUT where PATCH is
// expected.
func fillSessionCall(ev *event.Event, r *rand.Rand, ep *endpoint, u *user) {
	fillCall(ev, r, ep, u.dev == devBrowser)
	if ep.kind == kAdmin && !u.staff {
		fillRequest(ev, r, ep, ep.path(r, false), 403)
	}
	if u.client == "android-5.8.3" && ep.route == "/v1/me" && ep.method == "PATCH" && chance(r, 0.3) {
		ev.Method, ev.Status, ev.LatencyMS = "PUT", 405, logNormal(r, 2, 0.4)
	}
}

// thinkTime is the gap to the next call: a few milliseconds inside a page
// load, seconds to minutes between pages.
func (s *session) thinkTime() time.Duration {
	r := s.g.r
	if s.burst > 0 {
		s.burst--
		return seconds(uniform(r, 0.01, 0.3))
	}
	if chance(r, 0.35) {
		s.burst = between(r, 1, 4)
	}
	return seconds(min(600, logNormal(r, 5, 1.0)))
}

func (s *session) finish(ev *event.Event) {
	r, cat := s.g.r, s.g.w.cat
	if s.expires && chance(r, 0.2) {
		fillRequest(ev, r, cat.logout, cat.logout.route, 204)
	} else {
		// No logout: the client just leaves; emit its last read.
		fillSessionCall(ev, r, s.g.pickCall(r, s.u), s.u)
	}
	s.ph, s.at = phDone, never
}
