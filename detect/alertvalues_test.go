package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestAlertSeveritiesFollowEnrich ties AlertSeverities and AlertLabels to
// what the engine does: alerts about a listed address carry source_list and
// the severity the list raises them to, unless the rule groups by the list.
func TestAlertSeveritiesFollowEnrich(t *testing.T) {
	const lists = `lists:
  known_bad: {cidrs: [198.51.100.0/24], raise_severity: 1}
  very_bad: {cidrs: [203.0.113.0/24], raise_severity: 3}
  not_filled: {cidrs: [], raise_severity: 2}
`
	cases := []struct {
		name, severity, groupBy, eventLabels string
		wantSeverities, wantLabels           []string
	}{
		{"by address", "medium", "[source_ip]", "[]", []string{"medium", "high", "critical"}, []string{"source_ip", "source_list"}},
		{"by network", "high", "[source_prefix]", "[]", []string{"high", "critical"}, []string{"source_prefix", "source_list"}},
		{"by user", "medium", "[user]", "[source_ip]", []string{"medium"}, []string{"user", "source_ip"}},
		{"by address and list", "low", "[source_ip, source_list]", "[]", []string{"low"}, []string{"source_ip", "source_list"}},
		{"by address, user as event label", "info", "[source_ip]", "[user]", []string{"info", "low", "high"}, []string{"source_ip", "user", "source_list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := fmt.Sprintf("%srules:\n  - name: r\n    severity: %s\n    category: c\n    match: status == 401\n    group_by: %s\n    event_labels: %s\n    threshold: {count: 5, window: 1m}\n",
				lists, tc.severity, tc.groupBy, tc.eventLabels)
			rs, err := ParseRules("test.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := rs[0].AlertSeverities(); !slices.Equal(got, tc.wantSeverities) {
				t.Errorf("AlertSeverities = %q, want %q", got, tc.wantSeverities)
			}
			if got := rs[0].AlertLabels(); !slices.Equal(got, tc.wantLabels) {
				t.Errorf("AlertLabels = %q, want %q", got, tc.wantLabels)
			}
		})
	}
}

// TestAlertValuesCoverTheEnginesAlerts runs the engine on listRules and
// checks that each alert's severity and labels are among those the methods
// say its rule's alerts can have.
func TestAlertValuesCoverTheEnginesAlerts(t *testing.T) {
	rs := mustRules(t, listRules)
	e, rec := newEngine(t, rs, Options{})
	e.Process(login(0, "198.51.100.1", "backup-admin", false))
	for i := range 3 {
		e.Process(login(time.Duration(i+1)*time.Second, "192.0.2.5", "alice", false))
	}
	if len(rec.alerts) < 2 {
		t.Fatalf("alerts %v, want a listed and an unlisted one", rec.alerts)
	}
	for _, a := range rec.alerts {
		r := rs[slices.IndexFunc(rs, func(r *Rule) bool { return r.Name == a.Rule })]
		if !slices.Contains(r.AlertSeverities(), a.Severity) {
			t.Errorf("%s alert has severity %s, not in AlertSeverities %q", a.Rule, a.Severity, r.AlertSeverities())
		}
		for k := range a.Labels {
			if !slices.Contains(r.AlertLabels(), k) {
				t.Errorf("%s alert has label %s, not in AlertLabels %q", a.Rule, k, r.AlertLabels())
			}
		}
	}
}
