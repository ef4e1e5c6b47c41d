package simulate

import (
	"math"
	"strings"
	"testing"
	"time"
)

// paramRange is a documented range of a drawn parameter.
type paramRange struct {
	name   string
	param  string
	lo, hi float64
}

// ranges are the parameter ranges docs/simulate.md promises, at the
// default duration of one hour.
var ranges = []paramRange{
	{"brute-force", "rate_per_s", 0.5, 5}, {"brute-force", "duration_s", 120, 600},
	{"low-and-slow", "rate_per_min", 0.7, 3}, {"low-and-slow", "duration_s", 45 * 60, 60 * 60},
	{"credential-stuffing", "rate_per_s", 1, 10}, {"credential-stuffing", "success_per_try", 0, 0.003},
	{"password-spraying", "seconds_per_try", 2, 15}, {"password-spraying", "duration_s", 300, 1200},
	{"spray-success", "success_at_share", 0.2, 0.6},
	{"botnet-stuffing", "addresses", 1000, 5000}, {"botnet-stuffing", "duration_s", 300, 1200},
	{"rotation-ipv6", "tries_per_address", 1, 10}, {"rotation-ipv6", "rate_per_s", 0.5, 5},
	{"rotation-ipv4", "tries_per_address", 1, 10}, {"rotation-ipv4", "rate_per_s", 0.5, 5},
	{"distributed-brute-force", "addresses", 10, 60},
	{"takeover", "addresses", 10, 60},
	{"token-abuse", "rate_per_s", 0.2, 5}, {"token-abuse", "duration_s", 120, 600},
	{"scanning", "paths", 200, 1000}, {"scanning", "rate_per_s", 2, 20},
	{"forced-browsing", "endpoints", 10, 25},
	{"unexpected-methods", "requests", 20, 200},
	{"honey-endpoint", "touches", 1, 3}, {"honey-account", "tries", 1, 3},
	{"error-spike", "factor", 4, 10}, {"error-spike", "duration_s", 120, 600}, {"error-spike", "baseline_5xx_percent", 0.1, 1},
	{"outage", "failing_share", 0.6, 0.95}, {"outage", "duration_s", 60, 300},
	{"latency-degradation", "factor", 4, 10}, {"latency-degradation", "duration_s", 180, 600},
	{"office-nat", "users", 500, 3000}, {"carrier-nat", "users", 1000, 5000},
	{"load-test", "rate_per_s", 20, 150}, {"deploy-blip", "blips", 1, 3},
	{"traffic-surge", "factor", 3, 10}, {"batch-job", "period_s", 120, 300},
	{"crawler", "gone_share", 0.01, 0.03},
}

// TestParameterRangesHold plans the default hour for many seeds and checks
// every drawn parameter, each baseline-relative attack's warm-up and that
// every item fits in the hour.
func TestParameterRangesHold(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 5
	}
	seen := map[string]bool{}
	for seed := range uint64(seeds) {
		sc := plan(t, Options{Seed: seed, Rate: DefaultRate, Attacks: Attacks(), Benign: Benigns()})
		for _, it := range sc.items {
			checkItem(t, seed, it, sc.horizon)
			if ep, ok := it.params["endpoint"].(string); ok && it.name != string(HoneyEndpoint) {
				seen["guesses at "+ep] = true
			}
			for _, pr := range ranges {
				if pr.name != it.name {
					continue
				}
				v, ok := it.params[pr.param].(float64)
				if i, isInt := it.params[pr.param].(int); isInt {
					v, ok = float64(i), true
				}
				seen[pr.name+"/"+pr.param] = true
				if !ok || v < pr.lo*0.9995 || v > pr.hi*1.0005 {
					t.Errorf("seed %d: %s %s = %v, want %g..%g", seed, it.id, pr.param, it.params[pr.param], pr.lo, pr.hi)
				}
			}
		}
	}
	for _, pr := range ranges {
		if !seen[pr.name+"/"+pr.param] {
			t.Errorf("no %s has parameter %s", pr.name, pr.param)
		}
	}
	if !seen["guesses at /v1/auth/login"] || (seeds > 5 && !seen["guesses at /v1/auth/token"]) {
		t.Errorf("password guessing went to %v; want the login and, now and then, the token endpoint", seen)
	}
}

func checkItem(t *testing.T, seed uint64, it *item, horizon time.Duration) {
	t.Helper()
	if it.start < 0 || it.end > horizon || it.end <= it.start {
		t.Errorf("seed %d: %s at [%s, %s] does not fit in [0, %s]", seed, it.id, it.start, it.end, horizon)
	}
	if it.baseline && it.start < 15*time.Minute {
		t.Errorf("seed %d: %s starts at %s, before 15m of history", seed, it.id, it.start)
	}
	if len(it.keys) == 0 {
		t.Errorf("seed %d: %s has no key", seed, it.id)
	}
}

// TestOutageHitsTheQuietService checks that over seeds some outages hit
// exports, the service of about 1 request a second, and others not.
func TestOutageHitsTheQuietService(t *testing.T) {
	hits := map[bool]int{}
	for seed := range uint64(12) {
		sc := plan(t, Options{Seed: seed, Rate: DefaultRate, Users: 5000, Attacks: []Attack{Outage}})
		hits[sc.items[0].service.name == "exports"]++
	}
	if hits[true] == 0 || hits[false] == 0 {
		t.Fatalf("outages on exports / elsewhere over 12 seeds: %d / %d; want both", hits[true], hits[false])
	}
}

func TestLivePlacesAttacksEarly(t *testing.T) {
	sc := plan(t, Options{Seed: 3, Rate: 100, Users: 5000, Live: true, Attacks: Attacks(), Benign: Benigns()})
	for _, it := range sc.items {
		want := time.Duration(0)
		if it.baseline {
			want = 15 * time.Minute
		}
		if it.start < want || (it.services == nil && !it.whole && it.start != want) {
			t.Errorf("%s starts at %s in live mode; want %s", it.id, it.start, want)
		}
	}
}

func TestScenarioWithoutRoomIsRefusedWithAdvice(t *testing.T) {
	crowded := make([]Attack, 20)
	for i := range crowded {
		crowded[i] = ErrorSpike
	}
	for name, o := range map[string]Options{
		"too short":  {Seed: 1, Rate: 10, Users: 5000, Duration: 30 * time.Second},
		"no service": {Seed: 1, Rate: 10, Users: 5000, Duration: 10 * time.Minute, Attacks: crowded},
	} {
		if _, err := Plan(o); err == nil || !strings.Contains(err.Error(), "longer") {
			t.Errorf("%s: err = %v; want advice to use a longer duration", name, err)
		}
	}
}

// TestModulationCountsEveryActiveBurst compares the load factor with a
// plain sum over all bursts, over a long live horizon.
func TestModulationCountsEveryActiveBurst(t *testing.T) {
	m := newModulation(newRand(1, "modulation"), 48*time.Hour)
	r := newRand(2, "times")
	for range 10_000 {
		at := time.Duration(r.Int64N(int64(48 * time.Hour)))
		want := 1 + m.a1*math.Sin(m.f1*at.Seconds()+m.p1) + m.a2*math.Sin(m.f2*at.Seconds()+m.p2)
		for _, b := range m.bursts {
			if at >= b.start && at < b.end {
				want += b.amp
			}
		}
		if got := m.at(at); math.Abs(got-want) > 1e-12 {
			t.Fatalf("at(%s) = %v, want %v", at, got, want)
		}
	}
}
