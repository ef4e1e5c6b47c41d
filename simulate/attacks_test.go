package simulate

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

type attackCheck func(t *testing.T, evs []event.Event, it *item, sc *Scenario)

func distinct(evs []event.Event, f func(*event.Event) string) int {
	seen := map[string]bool{}
	for i := range evs {
		seen[f(&evs[i])] = true
	}
	return len(seen)
}

func byUser(ev *event.Event) string { return ev.User }
func byAddr(ev *event.Event) string { return ev.SourceIP.String() }
func byPath(ev *event.Event) string { return ev.Path }

// perSecond is the events' rate over the item's window.
func perSecond(evs []event.Event, it *item) float64 {
	return float64(len(evs)) / (it.end - it.start).Seconds()
}

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*want }

func countStatus(evs []event.Event, ok func(int) bool) int {
	n := 0
	for _, ev := range evs {
		if ok(ev.Status) {
			n++
		}
	}
	return n
}

// attackChecks measure what makes each attack the attack it is.
var attackChecks = map[Attack]attackCheck{
	BruteForce: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		if distinct(evs, byAddr) != 1 || distinct(evs, byUser) > 3 || !near(perSecond(evs, it), it.params["rate_per_s"].(float64), 0.3) {
			t.Errorf("%d addresses, %d users, %.2f tries/s; want 1, ≤ 3, about %v", distinct(evs, byAddr), distinct(evs, byUser), perSecond(evs, it), it.params["rate_per_s"])
		}
	},
	LowAndSlow: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		if got := perSecond(evs, it) * 60; !near(got, it.params["rate_per_min"].(float64), 0.35) || countStatus(evs, func(s int) bool { return s == 401 }) != len(evs) {
			t.Errorf("%.2f failed tries/min; want about %v, all failing", got, it.params["rate_per_min"])
		}
	},
	CredentialStuffing: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		if distinct(evs, byUser) != len(evs) || countStatus(evs, func(s int) bool { return s == 200 }) > len(evs)/100+1 {
			t.Errorf("%d users in %d tries; want one try per user, near-zero success", distinct(evs, byUser), len(evs))
		}
	},
	PasswordSpraying: func(t *testing.T, evs []event.Event, it *item, sc *Scenario) {
		valid := sc.w.pop.names()
		for _, ev := range evs {
			if !valid[ev.User] {
				t.Fatalf("sprayed user %q is not one of ours", ev.User)
			}
		}
		if distinct(evs, byUser) != len(evs) || !near(1/perSecond(evs, it), it.params["seconds_per_try"].(float64), 0.3) {
			t.Errorf("%d users in %d tries, %.1f s/try; want one try per user every %v s", distinct(evs, byUser), len(evs), 1/perSecond(evs, it), it.params["seconds_per_try"])
		}
	},
	SpraySuccess: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		winner := it.params["winner"].(string)
		i := slices.IndexFunc(evs, func(ev event.Event) bool { return ev.User == winner && ev.Status == 200 })
		used := i >= 0 && slices.ContainsFunc(evs[i:], func(ev event.Event) bool { return ev.User == winner && ev.Service != "auth" })
		if !used || distinct(evs, byAddr) != 1 {
			t.Errorf("no success of %s followed by the account's use from the one address", winner)
		}
	},
	BotnetStuffing: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		if n := it.params["addresses"].(int); distinct(evs, byAddr) != n || len(evs) != n || distinct(evs, byUser) != n {
			t.Errorf("%d addresses, %d users, %d tries; want %d of each", distinct(evs, byAddr), distinct(evs, byUser), len(evs), n)
		}
	},
	RotationIPv6: rotation, RotationIPv4: rotation,
	Distributed: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		if distinct(evs, byUser) != 1 || distinct(evs, byAddr) < 10 || distinct(evs, byAddr) > it.params["addresses"].(int) {
			t.Errorf("%d users from %d addresses; want one user from 10-60", distinct(evs, byUser), distinct(evs, byAddr))
		}
	},
	Takeover: func(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
		fresh := netip.MustParseAddr(it.params["fresh_address"].(string))
		failed := map[netip.Addr]bool{}
		for _, ev := range evs {
			if ev.Status == 401 {
				failed[ev.SourceIP] = true
			}
		}
		i := slices.IndexFunc(evs, func(ev event.Event) bool { return ev.Status == 200 })
		if len(failed) < 10 || i < 0 || evs[i].SourceIP != fresh || failed[fresh] || evs[i].Endpoint != "/v1/auth/login" {
			t.Errorf("failures from %d addresses, then success %v; want ≥ 10, then a login from the fresh %s", len(failed), i, fresh)
		}
	},
	TokenAbuse: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		denied := countStatus(evs, func(s int) bool { return s == 401 || s == 403 })
		if distinct(evs, func(ev *event.Event) string { return ev.ClientID }) != 1 || float64(denied) < 0.85*float64(len(evs)) ||
			slices.ContainsFunc(evs, func(ev event.Event) bool { return ev.Service == "auth" }) {
			t.Errorf("%d of %d denied; want one client collecting 401/403 outside auth", denied, len(evs))
		}
	},
	Scanning: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		if n := distinct(evs, byPath); n < 180 || countStatus(evs, func(s int) bool { return s == 404 }) < len(evs)*8/10 {
			t.Errorf("%d distinct paths; want hundreds, mostly 404", n)
		}
	},
	ForcedBrowsing: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		eps := distinct(evs, func(ev *event.Event) string { return ev.Method + " " + ev.Endpoint })
		if eps < 10 || countStatus(evs, func(s int) bool { return s == 403 }) < len(evs)/2 {
			t.Errorf("%d endpoints; want 403s across at least 10", eps)
		}
	},
	UnexpectedMethods: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		if countStatus(evs, func(s int) bool { return s == 405 || s == 501 }) != len(evs) || distinct(evs, func(ev *event.Event) string { return ev.Method }) < 5 {
			t.Errorf("want only 405/501 answers to several methods")
		}
	},
	WellKnownUsers: func(t *testing.T, evs []event.Event, _ *item, _ *Scenario) {
		for _, ev := range evs {
			if !slices.Contains(wellKnownNames, ev.User) {
				t.Fatalf("user %q is not a well-known name", ev.User)
			}
		}
	},
	HoneyEndpoint: func(t *testing.T, evs []event.Event, it *item, sc *Scenario) {
		if !slices.ContainsFunc(evs, func(ev event.Event) bool { return slices.Contains(sc.opts.HoneyEndpoints, ev.Endpoint) }) {
			t.Errorf("no touch of a honey endpoint")
		}
	},
	HoneyAccount: func(t *testing.T, evs []event.Event, it *item, sc *Scenario) {
		if !slices.ContainsFunc(evs, func(ev event.Event) bool { return slices.Contains(sc.opts.HoneyAccounts, ev.User) }) {
			t.Errorf("no login as a honey account")
		}
	},
	ListedSource: func(t *testing.T, evs []event.Event, _ *item, sc *Scenario) {
		if !slices.ContainsFunc(sc.opts.ListedCIDRs, func(p netip.Prefix) bool { return p.Contains(evs[0].SourceIP) }) || len(evs) > 15 {
			t.Errorf("source %s outside the listed CIDRs, or %d requests is not mildly bad", evs[0].SourceIP, len(evs))
		}
	},
}

func rotation(t *testing.T, evs []event.Event, it *item, _ *Scenario) {
	net := netip.MustParsePrefix(it.keys[0]["source_prefix"])
	for _, ev := range evs {
		if !net.Contains(ev.SourceIP) {
			t.Fatalf("address %s outside %s", ev.SourceIP, net)
		}
	}
	changes := float64(len(evs) / it.params["tries_per_address"].(int))
	if net.Addr().Is4() {
		changes = 254 * (1 - math.Exp(-changes/254)) // the expected distinct hosts of a /24
	}
	if float64(distinct(evs, byAddr)) < 0.8*changes {
		t.Errorf("%d addresses for %d tries; want a new one every %v tries", distinct(evs, byAddr), len(evs), it.params["tries_per_address"])
	}
}

// TestAttacksAreWhatTheyClaim measures each attack in a one-hour scenario
// over a thin background.
func TestAttacksAreWhatTheyClaim(t *testing.T) {
	for _, seed := range []uint64{21, 22} {
		sc := plan(t, Options{Seed: seed, Rate: 5, Users: 5000, Duration: time.Hour, Attacks: Attacks()})
		evs := itemEvents(t, sc)
		for _, it := range sc.items {
			check := attackChecks[Attack(it.name)]
			if check == nil {
				continue // the service attacks: TestServiceAttacksChangeTheirService
			}
			t.Run(it.id, func(t *testing.T) { check(t, evs[it.name], it, sc) })
		}
	}
}
