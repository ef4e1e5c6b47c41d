package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

const correlateRules = `
rules:
  - {name: by_ip, description: d, severity: medium, category: brute_force, match: status == 401, group_by: [source_ip], threshold: {count: 5, window: 1m}, resolve_after: 30s, repeat_interval: 2m}
  - {name: by_user, description: d, severity: high, category: brute_force, match: status == 401, group_by: [user], threshold: {count: 8, window: 1m}, resolve_after: 30s}
  - {name: by_net, description: d, severity: low, category: brute_force, match: status == 401, group_by: [source_prefix], threshold: {count: 30, window: 1m}, resolve_after: 30s}
  - {name: by_client, description: d, severity: low, category: api_abuse, match: status == 429, group_by: [client_id], threshold: {count: 5, window: 1m}, resolve_after: 30s}
  - {name: outage, description: d, severity: critical, category: availability, match: status >= 500, group_by: [service], threshold: {count: 5, window: 1m}, resolve_after: 30s}
  - {name: botnet, description: d, severity: high, category: credential_stuffing, match: status == 401, group_by: [service, endpoint], threshold: {count: 60, window: 1m}, resolve_after: 30s}
`

// correlateTraffic is twenty minutes holding: two addresses of one network
// attacking a user each (two incidents, one joined by the network's
// alert); a third address attacking another user, then the first user
// after that user's alerts resolved (that alert meets both incidents,
// which merge); a client flooding, an outage and a botnet on the login
// route.
func correlateTraffic(e *Engine) {
	var evs []*event.Event
	for i := range 40 {
		at := time.Duration(i) * 2 * time.Second
		evs = append(evs, login(at, "198.51.100.7", "alice", false), login(at, "198.51.100.8", "bob", false),
			login(6*time.Minute+at, "203.0.113.9", "carol", false), login(8*time.Minute+at, "203.0.113.9", "alice", false))
		flood := ev(12*time.Minute+at, 429, fmt.Sprint("192.0.2.", i), fmt.Sprint("u", i))
		flood.ClientID = "mobile-7"
		down := ev(14*time.Minute+at, 503, "", "")
		down.Endpoint = "/v1/items"
		evs = append(evs, flood, down, ev(14*time.Minute+at, 401, fmt.Sprint("192.0.2.", 100+i%50), fmt.Sprint("u", i)))
	}
	for at := time.Duration(0); at < 20*time.Minute; at += 5 * time.Second { // moves the watermark on
		evs = append(evs, ev(at, 200, "203.0.113.200", "dave"))
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
	for _, x := range evs {
		e.Process(x)
	}
	e.Flush()
}

// TestCorrelatorIsTheEngines: the transitions of an engine with incidents
// disabled, put through a Correlator, carry the incidents and severities
// the engine gives them, through merges, escalation, repeats, resolutions
// and an incident joined again after its alerts resolved.
func TestCorrelatorIsTheEngines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
	}{{"default window", 0}, {"one-minute window", time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			o := IncidentOptions{Window: tc.window}
			rules := mustRules(t, correlateRules)
			e, want := newEngine(t, rules, Options{Lateness: 5 * time.Second, Incidents: o})
			correlateTraffic(e)
			off, got := newEngine(t, mustRules(t, correlateRules), Options{Lateness: 5 * time.Second, Incidents: IncidentOptions{Disabled: true}})
			correlateTraffic(off)
			if len(got.alerts) != len(want.alerts) {
				t.Fatalf("%d transitions without incidents, %d with: %v", len(got.alerts), len(want.alerts), want.transitions())
			}
			c := NewCorrelator(o, rules)
			ids, merged := map[string]bool{}, false
			for i := range got.alerts {
				a, w := got.alerts[i], want.alerts[i]
				if a.IncidentID != "" {
					t.Fatalf("incidents disabled, yet %s carries incident %s", a.Rule, a.IncidentID)
				}
				c.Correlate(&a)
				if a.IncidentID != w.IncidentID || a.IncidentSeverity != w.IncidentSeverity {
					t.Errorf("%s %s %v: correlator says incident %s (%s), engine %s (%s)", a.Rule, a.Transition, a.Labels,
						a.IncidentID, a.IncidentSeverity, w.IncidentID, w.IncidentSeverity)
				}
				if w.Transition == TransitionFiring && w.Rule == "by_user" && w.Labels["user"] == "alice" && ids[w.IncidentID] {
					merged = merged || w.StartsAt.After(t0.Add(8*time.Minute))
				}
				ids[w.IncidentID] = true
			}
			// The traffic must hold what the test claims to cover.
			for _, tr := range []Transition{TransitionFiring, TransitionRepeat, TransitionResolved} {
				if countTransitions(want.alerts, tr) == 0 {
					t.Errorf("no %s transition: %v", tr, want.transitions())
				}
			}
			if tc.window == 0 && (len(ids) < 4 || !merged) {
				t.Errorf("want several incidents, and the second attack on alice joining an earlier one: %d incidents, merged %v", len(ids), merged)
			}
		})
	}
}
