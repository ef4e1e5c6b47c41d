package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-sec/vigil/event"
)

// login is a login attempt at t0+at from ip for user; ok says whether it
// succeeded.
func login(at time.Duration, ip, user string, ok bool) *event.Event {
	status := 401
	if ok {
		status = 200
	}
	e := ev(at, status, ip, user)
	e.RequestID = fmt.Sprintf("r-%d-%s-%s-%d", at, ip, user, status)
	return e
}

const multiWindowRule = `
rules:
  - name: brute_force_source
    description: failed logins from one address
    severity: high
    category: brute_force
    match: status == 401
    of: endpoint == "/v1/auth/login"
    group_by: [source_ip]
    when:
      - {name: fast, window: 15s, count: 5, share: 0.8}
      - {name: slow, window: 30m, count: 20, share: 0.8}
    summary: '{{ .Values.count }} failures ({{ percent .Values.share }}) from {{ .Labels.source_ip }} in {{ .Window }}'
`

func TestWhenFastAndSlowConditionsAreOneAlert(t *testing.T) {
	tests := []struct {
		name      string
		every     time.Duration
		n         int
		okEvery   int // one success every okEvery attempts (0: none)
		wantFire  bool
		wantBy    time.Duration
		condition string
	}{
		{"fast attack fires within seconds", 2 * time.Second, 60, 0, true, 8 * time.Second, "fast"},
		{"low and slow fires on the long window", 90 * time.Second, 40, 0, true, 30 * time.Minute, "slow"},
		{"a batch job every three minutes is quiet", 3 * time.Minute, 30, 0, false, 0, ""},
		{"a busy NAT with normal typos is quiet", time.Second, 3000, 10, false, 0, ""},
		{"four typos then a success is quiet", 3 * time.Second, 4, 0, false, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, multiWindowRule), Options{})
			for i := range tc.n {
				fail := tc.okEvery == 0 || i%tc.okEvery != 0
				if tc.okEvery > 0 {
					fail = !fail // a NAT: mostly successes, one failure in okEvery
				}
				e.Process(login(time.Duration(i)*tc.every, "198.51.100.7", fmt.Sprint("u", i%50), !fail))
			}
			e.Flush()
			fired := countTransitions(rec.alerts, TransitionFiring)
			if !tc.wantFire {
				if fired != 0 {
					t.Fatalf("fired: %v", rec.transitions())
				}
				return
			}
			if fired != 1 || countTransitions(rec.alerts, TransitionResolved) != 1 {
				t.Fatalf("transitions = %v, want one firing and its resolve", rec.transitions())
			}
			a := rec.alerts[0]
			if a.StartsAt.Sub(t0) > tc.wantBy || a.Condition != tc.condition {
				t.Fatalf("fired at +%s by %q, want by +%s by %q", a.StartsAt.Sub(t0), a.Condition, tc.wantBy, tc.condition)
			}
			if a.Values["share"] != 1 || !strings.Contains(a.Summary, "(100.0%) from 198.51.100.7") {
				t.Fatalf("values %v, summary %q", a.Values, a.Summary)
			}
		})
	}
}

// TestWhenResolvesOnlyWhenEveryConditionIsFalse: a fast attack that slows
// down keeps its alert through the slow condition.
func TestWhenResolvesOnlyWhenEveryConditionIsFalse(t *testing.T) {
	e, rec := newEngine(t, mustRules(t, multiWindowRule), Options{})
	at := time.Duration(0)
	for range 10 { // fast
		e.Process(login(at, "198.51.100.7", "alice", false))
		at += time.Second
	}
	for range 30 { // then one a minute: the slow window still holds
		e.Process(login(at, "198.51.100.7", "alice", false))
		at += time.Minute
	}
	if got := rec.transitions(); len(got) != 1 {
		t.Fatalf("transitions = %v while the slow condition holds", got)
	}
	e.Flush()
	last := rec.alerts[len(rec.alerts)-1]
	if last.Transition != TransitionResolved || last.EndsAt.Sub(t0) < at {
		t.Fatalf("resolved %v at +%s, attack ended at +%s", last.Transition, last.EndsAt.Sub(t0), at)
	}
}

const distinctMaxRule = `
rules:
  - name: one_user
    description: d
    severity: low
    category: test
    match: status == 401
    group_by: [source_ip]
    when: {window: 1m, count: 5, distinct: {field: user, max: 2}}
`

func TestDistinctMaxBoundsTheCondition(t *testing.T) {
	for users, want := range map[int]int{1: 1, 2: 1, 10: 0} {
		e, rec := newEngine(t, mustRules(t, distinctMaxRule), Options{})
		for i := range 10 {
			e.Process(login(time.Duration(i)*time.Second, "192.0.2.1", fmt.Sprint("u", i%users), false))
		}
		if got := countTransitions(rec.alerts, TransitionFiring); got != want {
			t.Errorf("%d users: fired %d, want %d", users, got, want)
		}
	}
}

const baselineRule = `
rules:
  - name: error_spike
    description: errors far above normal
    severity: high
    category: availability
    match: status >= 500
    of: "true"
    group_by: [service]
    when:
      window: 1m
      share: {min: 0.02, baseline: {factor: 3, period: 1h, min_history: 15m}}
      events: 50
`

// TestBaselineFromMinutesOfHistory: a spike fires once the service has
// min_history of history, not before, and not for a rise below factor.
func TestBaselineFromMinutesOfHistory(t *testing.T) {
	tests := []struct {
		name      string
		spikeAt   time.Duration
		basePM    int // errors per thousand before
		spikePM   int
		wantFires bool
	}{
		{"5x rise after 20 minutes fires", 20 * time.Minute, 10, 50, true},
		{"5x rise after 10 minutes is too early", 10 * time.Minute, 10, 50, false},
		{"1.5x rise is quiet", 20 * time.Minute, 10, 15, false},
		{"a surge of traffic with the same share is quiet", 20 * time.Minute, 10, 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, baselineRule), Options{})
			at := traffic(e, 0, tc.spikeAt, 20, tc.basePM)
			if len(rec.alerts) != 0 {
				t.Fatalf("fired during the baseline: %v", rec.transitions())
			}
			traffic(e, at, 2*time.Minute, 20, tc.spikePM)
			fired := countTransitions(rec.alerts, TransitionFiring) > 0
			if fired != tc.wantFires {
				t.Fatalf("fired = %v, want %v (%v)", fired, tc.wantFires, rec.transitions())
			}
			if fired && rec.alerts[0].StartsAt.Sub(t0.Add(at)) > time.Minute {
				t.Fatalf("fired %s after the rise", rec.alerts[0].StartsAt.Sub(t0.Add(at)))
			}
		})
	}
	if got := (&BaselineSpec{Factor: 3}).minHistory(); got != 15*time.Minute {
		t.Fatalf("default min_history = %s", got)
	}
}

// TestBaselineThresholdShrinksWithHistory checks the model's formula: with
// a quarter of the period seen, the margin above the median doubles.
func TestBaselineThresholdShrinksWithHistory(t *testing.T) {
	bc := baseCache{n: 15, median: 10, spread: 2}
	if got := bc.threshold(1.5, 60, 0); got != 10+6*2 {
		t.Fatalf("threshold with 15 of 60 samples = %g, want 22", got)
	}
	bc.n = 60
	if got := bc.threshold(1.5, 60, 0); got != 16 {
		t.Fatalf("threshold with the full period = %g, want 16", got)
	}
	bc.spread = 0
	if got := bc.threshold(3, 60, 0); got != 30 {
		t.Fatalf("threshold with no spread = %g, want factor times median", got)
	}
	if got := bc.threshold(3, 60, 8); got != 10+3*8 {
		t.Fatalf("threshold with counting noise 8 = %g, want median plus 3 noises", got)
	}
}

const latencyRule = `
rules:
  - name: latency
    description: slow
    severity: medium
    category: availability
    of: "true"
    group_by: [service]
    when:
      window: 1m
      slices: 4
      percentile: {field: latency_ms, p: 95, min: 50, baseline: {factor: 3, period: 1h, min_history: 15m}}
      events: 100
`

func latencyTraffic(e *Engine, start, d time.Duration, perSec int, ms func(i int) float64) time.Duration {
	at := start
	for i := 0; at < start+d; i++ {
		e.Process(&event.Event{Time: t0.Add(at), Service: "api", RequestID: fmt.Sprint("l", i), Method: "GET",
			Endpoint: "/v1/x", Status: 200, LatencyMS: ms(i), HasLatency: true})
		at += time.Second / time.Duration(perSec)
	}
	return at
}

func TestPercentileAgainstBaseline(t *testing.T) {
	normal := func(i int) float64 { return 20 + float64(i%20)*2 } // p95 about 58 ms
	tests := []struct {
		name  string
		slow  func(i int) float64
		blip  bool
		fires bool
	}{
		{"p95 eight times higher fires", func(i int) float64 { return 8 * normal(i) }, false, true},
		{"p95 twice as high is quiet", func(i int) float64 { return 2 * normal(i) }, false, false},
		{"ten slow seconds (a deploy) are quiet", func(i int) float64 { return 8 * normal(i) }, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, latencyRule), Options{})
			at := latencyTraffic(e, 0, 20*time.Minute, 20, normal)
			d := 3 * time.Minute
			if tc.blip {
				d = 10 * time.Second
			}
			end := latencyTraffic(e, at, d, 20, tc.slow)
			latencyTraffic(e, end, 2*time.Minute, 20, normal)
			fired := countTransitions(rec.alerts, TransitionFiring) > 0
			if fired != tc.fires {
				t.Fatalf("fired = %v, want %v: %v", fired, tc.fires, rec.alerts)
			}
			if !fired {
				return
			}
			a := rec.alerts[0]
			if a.Unit != UnitMS || a.Value < 250 || a.StartsAt.Sub(t0.Add(at)) > 2*time.Minute {
				t.Fatalf("alert %+v, %s after the rise", a, a.StartsAt.Sub(t0.Add(at)))
			}
		})
	}
}

const slicedOutageRule = `
rules:
  - name: outage
    description: most requests failing
    severity: critical
    category: availability
    match: status >= 500
    of: "true"
    group_by: [service]
    when: {window: 30s, slices: 3, share: 0.6, events: 10}
`

// TestSlicesIgnoreBlips: on a 1 request/s service, a minute of 90 % errors
// fires within 30 s; 8 seconds of 100 % errors (a deploy) do not.
func TestSlicesIgnoreBlips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		badFor time.Duration
		fires  bool
	}{{"one minute outage", time.Minute, true}, {"deploy blip", 8 * time.Second, false}} {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, slicedOutageRule), Options{})
			start := 5 * time.Minute
			for s := time.Duration(0); s < 8*time.Minute; s += time.Second {
				status := 200
				if s >= start && s < start+tc.badFor && (int(s/time.Second)%10 != 0 || tc.badFor < time.Minute) {
					status = 503
				}
				e.Process(&event.Event{Time: t0.Add(s), Service: "tiny", RequestID: fmt.Sprint(s), Method: "GET", Endpoint: "/", Status: status})
			}
			fired := countTransitions(rec.alerts, TransitionFiring) > 0
			if fired != tc.fires {
				t.Fatalf("fired = %v: %v", fired, rec.alerts)
			}
			if fired && rec.alerts[0].StartsAt.Sub(t0.Add(start)) > 30*time.Second {
				t.Fatalf("fired %s after the outage began", rec.alerts[0].StartsAt.Sub(t0.Add(start)))
			}
		})
	}
}

const prefixRule = `
rules:
  - name: rotation
    description: failures across a network
    severity: high
    category: brute_force
    match: status == 401
    group_by: [source_prefix]
    when: {window: 1m, count: 10, distinct: {field: source_ip, min: 3}}
`

func TestSourcePrefixGroupsRotatingAddresses(t *testing.T) {
	tests := []struct {
		name, addr string
		opts       Options
		want       string
	}{
		{"IPv6 /64", "2001:db8:1234:5678::%x", Options{}, "2001:db8:1234:5678::/64"},
		{"IPv4 /24", "203.0.113.%d", Options{}, "203.0.113.0/24"},
		{"IPv6 /56 when configured", "2001:db8:1234:5678::%x", Options{PrefixV6: 56}, "2001:db8:1234:5600::/56"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, prefixRule), tc.opts)
			for i := range 12 {
				e.Process(login(time.Duration(i)*time.Second, fmt.Sprintf(tc.addr, i+1), "alice", false))
			}
			if len(rec.alerts) != 1 || rec.alerts[0].Labels["source_prefix"] != tc.want {
				t.Fatalf("alerts %v, want one for %s", rec.alerts, tc.want)
			}
		})
	}
}

const listRules = `
lists:
  honey_users: {values: [backup-admin]}
  known_bad: {cidrs: [192.0.2.0/28], raise_severity: 2}
rules:
  - name: honey_account
    description: a honey account was tried
    severity: high
    category: deception
    match: user in lists.honey_users
    group_by: [source_ip]
    threshold: {count: 1, window: 1m}
  - name: fail_ip
    description: failures
    severity: low
    category: brute_force
    match: status == 401 && source_list == ""
    group_by: [source_ip]
    threshold: {count: 3, window: 1m}
  - name: listed_failures
    description: failures from a listed source
    severity: medium
    category: brute_force
    match: status == 401 && status_class == "4xx"
    group_by: [source_ip]
    threshold: {count: 3, window: 1m}
`

func TestListsAndSourceList(t *testing.T) {
	e, rec := newEngine(t, mustRules(t, listRules), Options{})
	e.Process(login(0, "198.51.100.1", "backup-admin", false))
	for i := range 3 {
		e.Process(login(time.Duration(i+1)*time.Second, "192.0.2.5", "alice", false))
	}
	byRule := map[string]Alert{}
	for _, a := range rec.alerts {
		byRule[a.Rule] = a
	}
	if _, ok := byRule["honey_account"]; !ok {
		t.Fatalf("honey account touch did not fire: %v", rec.transitions())
	}
	if _, ok := byRule["fail_ip"]; ok {
		t.Fatal("source_list did not exclude the listed address")
	}
	l := byRule["listed_failures"]
	if l.Labels["source_list"] != "known_bad" || l.Severity != "critical" {
		t.Fatalf("listed source alert = %+v; want label source_list and severity raised two levels", l)
	}
	if l.Fingerprint != Fingerprint("listed_failures", l.Labels) {
		t.Fatal("fingerprint does not cover the source_list label")
	}
}

func TestListErrors(t *testing.T) {
	for src, want := range map[string]string{
		strings.Replace(validRule, "status == 401", "user in lists.nope", 1):                                                "lists.nope is not declared",
		"lists:\n  bad: {cidrs: [192.0.2.0/24]}\n" + validRule:                                                              "",
		"lists:\n  bad: {cidrs: [nonsense]}\n" + validRule:                                                                  "not an address or CIDR",
		"lists:\n  bad: {cidrs: [10.0.0.0/8]}\n" + strings.Replace(validRule, "status == 401", "source_ip in lists.bad", 1): `source_list == "bad"`,
	} {
		_, err := ParseRules("t.yaml", []byte(src))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", src, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

const takeoverRule = `
rules:
  - name: takeover
    description: a success from a fresh address after a distributed attack
    severity: critical
    category: account_takeover
    match: user != ""
    group_by: [user]
    sequence:
      first: status == 401
      when: {window: 15m, distinct: {field: source_ip, min: 5}}
      then: status == 200 && endpoint == "/v1/auth/login"
      then_new: source_ip
      known: {match: status < 400, for: 24h}
`

func TestSequenceThenNewAndKnown(t *testing.T) {
	tests := []struct {
		name    string
		rule    string
		success string
		fires   bool
	}{
		{"a success from a fresh address fires", takeoverRule, "203.0.113.99", true},
		{"the owner from their usual address is quiet", takeoverRule, "198.51.100.20", false},
		{"a success from an attacking address is not fresh", takeoverRule, "192.0.2.3", false},
		{"without known, the owner fires too", strings.Replace(takeoverRule, "      known: {match: status < 400, for: 24h}\n", "", 1), "198.51.100.20", true},
		{"no attack, a new address is quiet", takeoverRule, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, tc.rule), Options{})
			// The owner works from their usual address.
			for i := range 20 {
				x := ev(time.Duration(i)*time.Minute, 200, "198.51.100.20", "alice")
				x.Endpoint = "/v1/invoices"
				e.Process(x)
			}
			at := 30 * time.Minute
			if tc.success != "" {
				for i := range 8 {
					e.Process(login(at, fmt.Sprintf("192.0.2.%d", i+1), "alice", false))
					at += 10 * time.Second
				}
			}
			ip := tc.success
			if ip == "" {
				ip = "203.0.113.99"
			}
			e.Process(login(at, ip, "alice", true))
			if fired := countTransitions(rec.alerts, TransitionFiring) == 1; fired != tc.fires {
				t.Fatalf("fired = %v: %v", fired, rec.transitions())
			}
		})
	}
}

// TestIncidentsCorrelateOneAttack: a brute force from one address on one
// user fires a per-address and a per-user alert, which share an incident;
// an unrelated attack gets its own, though both send the same public
// client id; three rules escalate the incident.
func TestIncidentsCorrelateOneAttack(t *testing.T) {
	src := `
rules:
  - {name: by_ip, description: d, severity: medium, category: brute_force, match: status == 401, group_by: [source_ip], threshold: {count: 5, window: 1m}}
  - {name: by_user, description: d, severity: high, category: brute_force, match: status == 401, group_by: [user], threshold: {count: 8, window: 1m}}
  - {name: by_both, description: d, severity: low, category: brute_force, match: status == 401, group_by: [source_ip, user], threshold: {count: 10, window: 1m}}
  - {name: by_service, description: d, severity: low, category: availability, match: status == 401, group_by: [service], threshold: {count: 1000, window: 1m}}
`
	run := func() []Alert {
		e, rec := newEngine(t, mustRules(t, src), Options{})
		for i := range 12 {
			for _, x := range []*event.Event{
				login(time.Duration(i)*time.Second, "198.51.100.7", "alice", false),
				login(time.Duration(i)*time.Second, "203.0.113.50", fmt.Sprint("u", i), false),
			} {
				x.ClientID = "web-app"
				e.Process(x)
			}
		}
		return rec.alerts
	}
	alerts := run()
	ids := map[string]string{}
	for _, a := range alerts {
		ids[a.Rule+"/"+a.Labels["source_ip"]+a.Labels["user"]] = a.IncidentID
	}
	attack := ids["by_ip/198.51.100.7"]
	if attack == "" || ids["by_user/alice"] != attack || ids["by_both/198.51.100.7alice"] != attack {
		t.Fatalf("one attack, incidents %v", ids)
	}
	if other := ids["by_ip/203.0.113.50"]; other == "" || other == attack {
		t.Fatalf("an unrelated attack shares the incident: %v", ids)
	}
	last := alerts[len(alerts)-1]
	for _, a := range alerts {
		if a.Rule == "by_both" {
			last = a
		}
	}
	if last.IncidentSeverity != "critical" {
		t.Fatalf("incident severity after three rules = %q, want high raised to critical", last.IncidentSeverity)
	}
	again := run()
	for i := range alerts {
		if alerts[i].IncidentID != again[i].IncidentID {
			t.Fatal("incident ids differ between two runs of the same events")
		}
	}
}

// TestEndpointAlertsAreNotTheServicesIncident: an outage and a latency
// rise of one service are one incident; a botnet on one of its endpoints,
// meanwhile, is another.
func TestEndpointAlertsAreNotTheServicesIncident(t *testing.T) {
	src := `
rules:
  - {name: outage, description: d, severity: critical, category: availability, match: status >= 500, group_by: [service], threshold: {count: 5, window: 1m}}
  - {name: slow, description: d, severity: medium, category: availability, match: status == 503, group_by: [service], threshold: {count: 8, window: 1m}}
  - {name: botnet, description: d, severity: high, category: credential_stuffing, match: status == 401, group_by: [service, endpoint], threshold: {count: 5, window: 1m}}
`
	e, rec := newEngine(t, mustRules(t, src), Options{})
	for i := range 10 {
		at := time.Duration(i) * time.Second
		down := ev(at, 503, "", "")
		down.Endpoint = "/v1/items"
		e.Process(down)
		e.Process(ev(at, 401, fmt.Sprintf("198.51.100.%d", i), fmt.Sprint("u", i)))
	}
	ids := map[string]string{}
	for _, a := range rec.alerts {
		ids[a.Rule] = a.IncidentID
	}
	if ids["outage"] == "" || ids["slow"] != ids["outage"] {
		t.Fatalf("the service's two availability alerts: incidents %v, want one", ids)
	}
	if ids["botnet"] == "" || ids["botnet"] == ids["outage"] {
		t.Fatalf("the login endpoint's botnet alert: incidents %v, want its own", ids)
	}
}

func TestNewRuleFieldErrors(t *testing.T) {
	when := func(s string) string {
		return strings.Replace(validRule, "threshold: {count: 3, window: 1m}", s, 1)
	}
	tests := []struct{ name, src, want string }{
		{"share without of", when("when: {window: 1m, share: 0.5}"), "set `of`"},
		{"no checks", when("when: {window: 1m}"), "at least one check"},
		{"share above 1", strings.Replace(when("when: {window: 1m, share: 1.5}"), "    match", "    of: 'true'\n    match", 1), "at most 1"},
		{"bad factor", when("when: {window: 1m, count: {baseline: {factor: 0.5}}}"), "baseline.factor"},
		{"min_history beyond period", when("when: {window: 1m, count: {baseline: {factor: 3, period: 30m, min_history: 2h}}}"), "min_history"},
		{"bad percentile field", when("when: {window: 1m, percentile: {field: status, p: 95, min: 1}}"), "latency_ms"},
		{"bad percentile", when("when: {window: 1m, percentile: {field: latency_ms, p: 100, min: 1}}"), "percentile.p"},
		{"slices without share", when("when: {window: 1m, slices: 3, count: 1}"), "slices applies"},
		{"non-number check", when("when: {window: 1m, count: lots}"), "not a number"},
		{"then_new unknown", when("sequence: {first: 'true', then: 'true', count: 1, window: 1m, then_new: ip}"), "then_new"},
		{"known without then_new", when("sequence: {first: 'true', then: 'true', count: 1, window: 1m, known: {match: 'true', for: 1h}}"), "set then_new"},
		{"of without when", strings.Replace(validRule, "    match", "    of: 'true'\n    match", 1), "of applies to when"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules("t.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPrefixOf(t *testing.T) {
	cfg := &derivedConfig{v4Bits: 24, v6Bits: 64}
	if got := prefixOf("2001:db8::1", cfg); got != "2001:db8::/64" {
		t.Fatal(got)
	}
	if got := prefixOf("::ffff:192.0.2.9", cfg); got != "192.0.2.0/24" {
		t.Fatal(got)
	}
	_ = netip.Addr{}
}

// TestBaselinesReportHistory: a service's baseline says how much history
// it has and when it is ready, through Baselines and the metric.
func TestBaselinesReportHistory(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e, _ := newEngine(t, mustRules(t, baselineRule), Options{Registerer: reg})
	at := traffic(e, 0, 10*time.Minute, 5, 10)
	bs := e.Baselines()
	if len(bs) != 1 || bs[0].Labels["service"] != "api" || bs[0].Ready || bs[0].HistorySeconds < 480 || bs[0].HistorySeconds > 600 {
		t.Fatalf("after 10 minutes: %+v", bs)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "vigil_detect_baseline_groups", "learning")); got != 1 {
		t.Fatalf("learning groups = %g", got)
	}
	traffic(e, at, 10*time.Minute, 5, 10)
	bs = e.Baselines()
	if len(bs) != 1 || !bs[0].Ready || bs[0].Threshold < 0.02 {
		t.Fatalf("after 20 minutes: %+v", bs)
	}
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, name, state string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == state {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{state=%q}", name, state)
	return nil
}

// TestInhibitedByAndEventLabels: per-address alerts in a network already
// alerting are not raised; event_labels name the user without changing
// the fingerprint.
func TestInhibitedByAndEventLabels(t *testing.T) {
	src := prefixRule + `  - name: per_address
    description: d
    severity: high
    category: brute_force
    match: status == 401
    group_by: [source_ip]
    event_labels: [user]
    inhibited_by: [rotation]
    threshold: {count: 3, window: 1m}
`
	reg := prometheus.NewPedanticRegistry()
	e, rec := newEngine(t, mustRules(t, src), Options{Registerer: reg})
	// Outside any network alert: one alert, naming the user.
	for i := range 3 {
		e.Process(login(time.Duration(i)*time.Second, "198.51.100.1", "alice", false))
	}
	// A rotation: after the network fires, its addresses raise nothing.
	for i := range 40 {
		e.Process(login(time.Duration(10+i)*time.Second, fmt.Sprintf("203.0.113.%d", 1+i/4), "bob", false))
	}
	perAddress, networkFired := 0, false
	for _, a := range rec.alerts {
		networkFired = networkFired || a.Rule == "rotation"
		if a.Rule != "per_address" {
			continue
		}
		if networkFired {
			t.Fatalf("per-address alert after the network's: %v", rec.transitions())
		}
		perAddress++
		if a.Labels["source_ip"] == "198.51.100.1" && (a.Labels["user"] != "alice" || a.Fingerprint != Fingerprint("per_address", map[string]string{"source_ip": "198.51.100.1"})) {
			t.Fatalf("alert %+v: want label user and a fingerprint of source_ip alone", a)
		}
	}
	if perAddress != 3 || !networkFired {
		t.Fatalf("%d per-address alerts; the network's should inhibit most: %v", perAddress, rec.transitions())
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "vigil_detect_alerts_inhibited_total" {
			for _, m := range mf.GetMetric() {
				found = found || m.GetCounter().GetValue() > 0
			}
		}
	}
	if !found {
		t.Fatal("no inhibited alert counted")
	}
	if _, err := New(mustRules(t, strings.Replace(src, "[rotation]", "[nope]", 1)), Options{}); err == nil || !strings.Contains(err.Error(), `"nope", which is not loaded`) {
		t.Fatalf("err = %v", err)
	}
}

// TestInhibitorsAreEvaluatedFirst: when one event makes a rule and the
// rule inhibiting it hold together, only the inhibitor fires, even when the
// inhibited rule is listed first.
func TestInhibitorsAreEvaluatedFirst(t *testing.T) {
	src := `
rules:
  - name: per_account
    description: d
    severity: high
    category: brute_force
    match: status == 401
    group_by: [user]
    inhibited_by: [rotation]
    when: {window: 1m, count: 8}
  - name: rotation
    description: d
    severity: high
    category: brute_force
    match: status == 401
    group_by: [source_prefix]
    when: {window: 1m, count: 8, distinct: {field: source_ip, min: 2}}
`
	e, rec := newEngine(t, mustRules(t, src), Options{})
	for i := range 8 {
		e.Process(login(time.Duration(i)*time.Second, fmt.Sprintf("203.0.113.%d", 1+i/4), "bob", false))
	}
	if len(rec.alerts) != 1 || rec.alerts[0].Rule != "rotation" {
		t.Fatalf("alerts = %v, want rotation's alone", rec.transitions())
	}
	if got := evaluationOrder(e.rules); !slices.Equal(got, []int{1, 0}) {
		t.Fatalf("evaluation order = %v", got)
	}
}

// TestDistinctShareOfLargePopulations: when more values try than a
// distinct_share condition keeps (40,000 addresses in under a minute), it
// samples both sets alike: the share and the count stay right, within a few
// percent, instead of a share taken over the newest values only.
func TestDistinctShareOfLargePopulations(t *testing.T) {
	src := `
rules:
  - name: many_failing
    description: d
    severity: high
    category: credential_stuffing
    match: status == 401
    of: "true"
    group_by: [endpoint]
    when: {window: 1m, distinct_share: {field: source_ip, min: 0.08}, distinct: {field: source_ip, min: 1000}}
`
	for _, tc := range []struct {
		failEvery int // one address in failEvery fails
		fires     bool
	}{{20, false}, {10, true}} {
		e, rec := newEngine(t, mustRules(t, src), Options{})
		const n = 40_000
		for i := range n {
			ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			e.Process(login(time.Duration(i)*time.Millisecond, ip, "u", i%tc.failEvery != 0))
		}
		if !tc.fires {
			if len(rec.alerts) != 0 {
				t.Fatalf("1 in %d failing: alerts %+v", tc.failEvery, rec.alerts)
			}
			continue
		}
		if len(rec.alerts) != 1 {
			t.Fatalf("1 in %d failing: alerts %+v", tc.failEvery, rec.alerts)
		}
		// The alert fires as soon as the condition holds (1,000 failing);
		// the state at the end holds the whole population.
		tr := e.rules[0].c.tracks[0]
		var st *groupState
		for _, h := range e.hot.m {
			st = &h.rs.tracks[0]
		}
		if st == nil || st.shift == 0 {
			t.Fatalf("no sampled state in the hot set")
		}
		sm := tr.summarize(st, st.fine[0].idx, st.fine[len(st.fine)-1].idx, e.sk)
		share := float64(sm.distinct) / float64(sm.ofDistinct)
		if share < 0.09 || share > 0.11 || sm.ofDistinct < n*9/10 || sm.ofDistinct > n*11/10 {
			t.Fatalf("shift %d: %d of %d distinct (share %.3f); want about 4,000 of 40,000", st.shift, sm.distinct, sm.ofDistinct, share)
		}
		var back groupState
		if err := back.decode(st.encode(nil), e.sk); err != nil || back.shift != st.shift {
			t.Fatalf("decoded shift %d (%v), want %d", back.shift, err, st.shift)
		}
	}
}

// TestLargeDistinctSets: a population's distinct count (a large set, kept
// as a map) is exact, forgets values as the window moves, survives the
// cache and agrees with a small set's count.
func TestLargeDistinctSets(t *testing.T) {
	src := `
rules:
  - name: many_addresses
    description: d
    severity: high
    category: credential_stuffing
    match: status == 401
    group_by: [endpoint]
    when: {window: 1m, distinct: {field: source_ip, min: 400}}
`
	e, rec := newEngine(t, mustRules(t, src), Options{})
	for i := range 399 { // 399 addresses in 40 s, one of them twice
		e.Process(login(time.Duration(i)*100*time.Millisecond, fmt.Sprintf("10.1.%d.%d", i/250, i%250), "u", false))
	}
	e.Process(login(40*time.Second, "10.1.0.0", "u", false))
	if len(rec.alerts) != 0 {
		t.Fatalf("fired at 399 distinct: %v", rec.alerts)
	}
	// Two minutes later the old addresses have left the window.
	for i := range 399 {
		e.Process(login(3*time.Minute+time.Duration(i)*100*time.Millisecond, fmt.Sprintf("10.2.%d.%d", i/250, i%250), "u", false))
	}
	if len(rec.alerts) != 0 {
		t.Fatalf("old addresses still counted: %v", rec.alerts)
	}
	e.Process(login(4*time.Minute, "10.3.0.1", "u", false))
	if len(rec.alerts) != 1 || rec.alerts[0].Value != 400 {
		t.Fatalf("alerts = %+v, want one at 400 distinct", rec.alerts)
	}
	// Round trip through the encoded form.
	tr := e.rules[0].c.tracks[0]
	var rs ruleState
	for _, h := range e.hot.m {
		b := h.rs.encode(nil)
		if err := rs.decode(b, e.rules[0].c.tracks, e.sk); err != nil {
			t.Fatal(err)
		}
		k, _ := rs.tracks[0].newestIdx()
		if n := rs.tracks[0].set.count(k-tr.nb+1, k); n != 400 || rs.tracks[0].set.big == nil {
			t.Fatalf("decoded count %d (big %v)", n, rs.tracks[0].set.big != nil)
		}
	}
}
