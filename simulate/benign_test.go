package simulate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// itemEvents collects each item's events (background excluded).
func itemEvents(t *testing.T, sc *Scenario) map[string][]event.Event {
	out := map[string][]event.Event{}
	observe(t, sc, func(it *item, ev *event.Event) {
		if it != nil {
			out[it.name] = append(out[it.name], *ev)
		}
	})
	return out
}

func logins(evs []event.Event) (ok, failed int, users map[string]bool) {
	users = map[string]bool{}
	for _, ev := range evs {
		if ev.Endpoint == "/v1/auth/login" {
			users[ev.User] = true
			if ev.Status == 401 {
				failed++
			} else {
				ok++
			}
		}
	}
	return ok, failed, users
}

// benignChecks measure the shapes that make each benign look-alike look
// like an attack, and those that make it benign.
var benignChecks = map[Benign]func(t *testing.T, evs []event.Event, it *item){
	OfficeNAT: func(t *testing.T, evs []event.Event, _ *item) {
		ok, failed, users := logins(evs)
		if share := float64(failed) / float64(ok+failed); len(users) < 300 || share < 0.01 || share > 0.15 {
			t.Errorf("%d users logged in, %.3f of logins failed; want hundreds of users, a few percent failing", len(users), share)
		}
	},
	CarrierNAT: func(t *testing.T, evs []event.Event, _ *item) {
		perAddr := map[netip.Addr]map[string]bool{}
		for _, ev := range evs {
			if perAddr[ev.SourceIP] == nil {
				perAddr[ev.SourceIP] = map[string]bool{}
			}
			perAddr[ev.SourceIP][ev.User] = true
		}
		users := 0
		for _, u := range perAddr {
			users += len(u)
		}
		if users/len(perAddr) < 5 {
			t.Errorf("%d users over %d addresses; want many users per address", users, len(perAddr))
		}
	},
	LoadTest: func(t *testing.T, evs []event.Event, it *item) {
		errs := 0
		for _, ev := range evs {
			if ev.Status >= 400 {
				errs++
			}
		}
		rate := float64(len(evs)) / (it.end - it.start).Seconds()
		if rate < 15 || float64(errs)/float64(len(evs)) > 0.005 {
			t.Errorf("%.0f events/s with %d errors of %d; want a high rate, ~0.1 %% errors", rate, errs, len(evs))
		}
	},
	TypoUser: func(t *testing.T, evs []event.Event, _ *item) {
		var statuses []int
		for _, ev := range evs[:5] {
			statuses = append(statuses, ev.Status)
		}
		if want := []int{401, 401, 401, 401, 200}; !equalInts(statuses, want) {
			t.Errorf("logins %v; want %v", statuses, want)
		}
	},
	HealthProbe: func(t *testing.T, evs []event.Event, _ *item) {
		for _, ev := range evs {
			if ev.Endpoint != "/healthz" || ev.Status != 200 {
				t.Fatalf("probe event %s", ev.AppendJSON(nil))
			}
		}
	},
	BatchJob: func(t *testing.T, evs []event.Event, it *item) {
		period := seconds(it.params["period_s"].(float64))
		for i, ev := range evs {
			if ev.Status != 401 || (i > 0 && absDur(ev.Time.Sub(evs[i-1].Time)-period) > period/15) {
				t.Fatalf("try %d: %s; want a failed login every %s", i, ev.AppendJSON(nil), period)
			}
		}
	},
	Traveller: func(t *testing.T, evs []event.Event, _ *item) {
		addrs := map[netip.Addr]bool{}
		for _, ev := range evs {
			if ev.Status == 401 {
				addrs[ev.SourceIP] = true
			}
		}
		if ok, _, _ := logins(evs); len(addrs) != 3 || ok != 1 {
			t.Errorf("failures from %d addresses, %d successes; want 3 and 1", len(addrs), ok)
		}
	},
	IPv6Privacy: func(t *testing.T, evs []event.Event, it *item) {
		net, addrs := netip.MustParsePrefix(it.keys[0]["source_prefix"]), map[netip.Addr]bool{}
		for _, ev := range evs {
			if !net.Contains(ev.SourceIP) {
				t.Fatalf("address %s outside %s", ev.SourceIP, net)
			}
			addrs[ev.SourceIP] = true
		}
		if len(addrs) < 2 {
			t.Errorf("%d addresses; want privacy addresses rotating", len(addrs))
		}
	},
	Crawler: func(t *testing.T, evs []event.Event, _ *item) {
		missing := 0
		for _, ev := range evs {
			if ev.Status == 404 {
				missing++
			}
		}
		if share := float64(missing) / float64(len(evs)); missing < 2 || share > 0.06 {
			t.Errorf("%d of %d requests 404; want a few", missing, len(evs))
		}
	},
}

// TestBenignPatternsAreWhatTheyClaim measures each benign look-alike but
// the service ones (TestServiceBenignPatterns).
func TestBenignPatternsAreWhatTheyClaim(t *testing.T) {
	sc := plan(t, Options{Seed: 11, Rate: 40, Users: 20_000, Duration: 30 * time.Minute,
		Benign: []Benign{OfficeNAT, CarrierNAT, LoadTest, TypoUser, HealthProbe, BatchJob, Traveller, IPv6Privacy, Crawler}})
	evs := itemEvents(t, sc)
	for _, it := range sc.items {
		t.Run(it.name, func(t *testing.T) { benignChecks[Benign(it.name)](t, evs[it.name], it) })
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }
