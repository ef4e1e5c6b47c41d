package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

const distinctRule = `
rules:
  - name: stuffing
    description: many users failing from one IP
    severity: high
    category: credential_stuffing
    match: status == 401
    group_by: [source_ip]
    distinct: {field: user, count: 5, window: 1m}
`

func TestDistinctWindowEdges(t *testing.T) {
	tests := []struct {
		name   string
		users  []string
		step   time.Duration
		firing int
	}{
		{"N-1 distinct users", []string{"a", "b", "c", "d"}, time.Second, 0},
		{"N-1 distinct users, repeated", []string{"a", "b", "a", "c", "d", "b", "d"}, time.Second, 0},
		{"N distinct users", []string{"a", "b", "c", "d", "e"}, time.Second, 1},
		{"N distinct users spanning the window", []string{"a", "b", "c", "d", "e"}, 15 * time.Second, 1},
		{"N distinct users spread too far", []string{"a", "b", "c", "d", "e"}, 16 * time.Second, 0},
		{"many users fire once", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, distinctRule), Options{Lateness: 5 * time.Second})
			for i, u := range tc.users {
				e.Process(ev(time.Duration(i)*tc.step, 401, "192.0.2.1", u))
			}
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing = %d, want %d", got, tc.firing)
			}
		})
	}
}

func TestDistinctCapIsExactUpToCount(t *testing.T) {
	// 100 distinct users: the set keeps count*1.5 values, the value saturates
	// there but never drops below the threshold.
	e, rec := newEngine(t, mustRules(t, distinctRule), Options{})
	for i := range 100 {
		e.Process(ev(time.Duration(i)*100*time.Millisecond, 401, "192.0.2.1", fmt.Sprintf("u%d", i)))
	}
	if len(rec.alerts) != 1 {
		t.Fatalf("alerts = %v", rec.transitions())
	}
	f := e.Firing()
	if len(f) != 1 || f[0].Value < 5 || f[0].Value > 8 {
		t.Fatalf("firing = %+v, want one alert with value between 5 and 8", f)
	}
}

const ratioRule = `
rules:
  - name: outage
    description: most requests failing
    severity: critical
    category: availability
    match: status >= 500
    group_by: [service]
    ratio: {ratio: 0.5, min_events: 10, window: 1m}
`

func TestRatioWindowEdges(t *testing.T) {
	tests := []struct {
		name       string
		ok, failed int
		okAfter    int // successes after the failures
		firing     int
	}{
		{"below min_events", 0, 9, 0, 0},
		{"min_events all failing", 0, 10, 0, 1},
		{"min_events reached by a success", 0, 9, 1, 1},
		{"just below ratio", 6, 5, 0, 0},
		{"exactly the ratio", 5, 5, 0, 1},
		{"healthy", 95, 5, 0, 0},
	}
	// Grouped by service, the group lives in the hot set; grouped by
	// address, in fastcache until its state grows past hotAdmitBytes, and
	// most events take the in-place denominator path there. Both must
	// agree.
	for _, groupBy := range []string{"service", "source_ip"} {
		rules := strings.Replace(ratioRule, "group_by: [service]", "group_by: ["+groupBy+"]", 1)
		for _, tc := range tests {
			t.Run(groupBy+"/"+tc.name, func(t *testing.T) {
				e, rec := newEngine(t, mustRules(t, rules), Options{})
				testRatioEdge(t, e, rec, tc.ok, tc.failed, tc.okAfter, tc.firing)
				if hot := len(e.hot.m); groupBy == "service" && hot != 1 {
					t.Errorf("%d groups in the hot set, want the service's", hot)
				}
			})
		}
	}
}

// TestPerServiceGroupsAreHot checks where a small group's state lives: in
// the hot set for a rule grouped by service alone or not at all, in
// fastcache for one grouped by anything else.
func TestPerServiceGroupsAreHot(t *testing.T) {
	for groupBy, want := range map[string]int{"[service]": 1, "[]": 1, "[source_ip]": 0, "[service, source_ip]": 0} {
		t.Run(groupBy, func(t *testing.T) {
			rules := strings.Replace(ratioRule, "group_by: [service]", "group_by: "+groupBy, 1)
			e, _ := newEngine(t, mustRules(t, rules), Options{})
			e.Process(ev(0, 503, "192.0.2.1", ""))
			e.Process(ev(time.Second, 200, "192.0.2.1", ""))
			if got := len(e.hot.m); got != want {
				t.Errorf("%d groups in the hot set, want %d", got, want)
			}
		})
	}
}

// testRatioEdge sends ok successes, then failed failures, then okAfter
// late successes, half a second apart, and checks how often the rule fired.
func testRatioEdge(t *testing.T, e *Engine, rec *recorder, ok, failed, okAfter, firing int) {
	t.Helper()
	at := time.Duration(0)
	// Successes first, so the ratio only reaches its final value at the end.
	for range ok {
		e.Process(ev(at, 200, "192.0.2.1", ""))
		at += time.Second / 2
	}
	for range failed {
		e.Process(ev(at, 503, "192.0.2.1", ""))
		at += time.Second / 2
	}
	for range okAfter {
		e.Process(ev(at-time.Second/2, 200, "192.0.2.1", ""))
	}
	if got := countTransitions(rec.alerts, TransitionFiring); got != firing {
		t.Fatalf("firing = %d, want %d", got, firing)
	}
}

const spikeRule = `
rules:
  - name: error_spike
    description: error share far above normal
    severity: high
    category: availability
    match: status >= 500
    group_by: [service]
    spike: {of: "true", window: 1m, baseline: 10m, factor: 4, min_events: 20, min_value: 0.05}
`

// traffic sends n requests per second for d, errPermille per thousand failing.
func traffic(e *Engine, start, d time.Duration, n, errPermille int) time.Duration {
	i := 0
	at := start
	for ; at < start+d; at += time.Second / time.Duration(n) {
		status := 200
		if (i+1)*errPermille/1000 > i*errPermille/1000 { // spread evenly
			status = 503
		}
		i++
		e.Process(&event.Event{Time: t0.Add(at), Service: "api", RequestID: fmt.Sprint(i), Method: "GET", Endpoint: "/v1/x", Status: status})
	}
	return at
}

func TestSpike(t *testing.T) {
	tests := []struct {
		name           string
		baseN, surgeN  int // requests per second
		basePM, surgPM int // errors per thousand requests
		firing         int
	}{
		{"steady", 10, 10, 20, 20, 0},
		{"traffic surge with normal error share", 10, 100, 20, 20, 0},
		{"error share 3x baseline", 10, 10, 20, 60, 0},
		{"error share 5x baseline", 10, 10, 20, 100, 1},
		{"above factor but under min_value", 10, 10, 5, 40, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, spikeRule), Options{})
			at := traffic(e, 0, 15*time.Minute, tc.baseN, tc.basePM)
			if len(rec.alerts) != 0 {
				t.Fatalf("alert during baseline: %v", rec.transitions())
			}
			traffic(e, at, 2*time.Minute, tc.surgeN, tc.surgPM)
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing = %d, want %d; firing now %+v", got, tc.firing, e.Firing())
			}
		})
	}
}

func TestCountSpike(t *testing.T) {
	rules := mustRules(t, `
rules:
  - name: login_flood
    description: logins far above normal
    severity: medium
    category: abuse
    match: endpoint == "/v1/auth/login"
    group_by: [service]
    spike: {window: 1m, baseline: 10m, factor: 3, min_events: 30}
`)
	tests := []struct {
		name        string
		base, surge int
		firing      int
	}{
		{"2x normal", 1, 2, 0},
		{"5x normal", 1, 5, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, rules, Options{})
			at := time.Duration(0)
			for ; at < 12*time.Minute; at += time.Second / time.Duration(tc.base) {
				e.Process(ev(at, 200, "192.0.2.1", "u"))
			}
			for end := at + 2*time.Minute; at < end; at += time.Second / time.Duration(tc.surge) {
				e.Process(ev(at, 200, "192.0.2.1", "u"))
			}
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing = %d, want %d", got, tc.firing)
			}
		})
	}
}

const sequenceRule = `
rules:
  - name: takeover
    description: success after failures
    severity: critical
    category: account_takeover
    match: endpoint == "/v1/auth/login"
    group_by: [source_ip, user]
    sequence: {first: status == 401, count: 3, then: status == 200, window: 1m}
`

func TestSequenceWindowEdges(t *testing.T) {
	tests := []struct {
		name   string
		steps  []int // statuses, one per 10 s
		firing int
	}{
		{"N-1 failures then success", []int{401, 401, 200}, 0},
		{"N failures then success", []int{401, 401, 401, 200}, 1},
		{"success before the failures", []int{200, 401, 401, 401}, 0},
		{"failures leave the window", []int{401, 401, 401, 0, 0, 0, 0, 0, 200}, 0},
		{"N failures then two successes fire once", []int{401, 401, 401, 200, 200}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, sequenceRule), Options{})
			for i, s := range tc.steps {
				if s != 0 {
					e.Process(ev(time.Duration(i)*10*time.Second, s, "192.0.2.1", "alice"))
				}
			}
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing = %d, want %d", got, tc.firing)
			}
			e.Flush()
			if got := countTransitions(rec.alerts, TransitionResolved); got != tc.firing {
				t.Fatalf("resolved = %d, want %d", got, tc.firing)
			}
		})
	}
}

// TestAlertUnit checks that alerts say how to read their value: a share for
// ratio rules, nothing (a count) for threshold rules.
func TestAlertUnit(t *testing.T) {
	for src, want := range map[string]string{ratioRule: UnitShare, thresholdRule: ""} {
		e, rec := newEngine(t, mustRules(t, src), Options{})
		for i := range 10 {
			e.Process(ev(time.Duration(i)*time.Second, 503, "192.0.2.1", ""))
			e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", ""))
		}
		if len(rec.alerts) == 0 || rec.alerts[0].Unit != want {
			t.Errorf("%s: alerts %+v; want unit %q", rec.transitions(), rec.alerts, want)
		}
	}
}
