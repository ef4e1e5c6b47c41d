package notify

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/rules"
)

// lintRules are the rules the lint cases are judged against: the test says
// what they are, whatever the shipped set becomes.
const lintRules = `rules:
  - {name: brute_force_user, severity: high, category: brute_force, match: status == 401, group_by: [user], threshold: {count: 5, window: 1m}}
  - {name: brute_force_source_ip, severity: medium, category: brute_force, match: status == 401, group_by: [source_ip], threshold: {count: 5, window: 1m}}
  - {name: error_spike, severity: high, category: availability, match: status >= 500, group_by: [service], threshold: {count: 50, window: 1m}}
  - {name: service_outage, severity: critical, category: availability, match: status >= 500, group_by: [service], threshold: {count: 500, window: 1m}}
`

func TestLintWarnsAboutRoutesNoLoadedRuleMatches(t *testing.T) {
	loaded, err := detect.ParseRules("lint.yaml", []byte(lintRules))
	if err != nil {
		t.Fatal(err)
	}
	eq := func(kv ...string) map[string]StringList {
		m := map[string]StringList{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	cases := []struct {
		name  string
		route RouteConfig
		want  string // "" means no warning
	}{
		{"default route", RouteConfig{}, ""},
		{"shipped category", RouteConfig{Match: eq("category", "brute_force")}, ""},
		{"shipped rule", RouteConfig{Match: eq("rule", "error_spike")}, ""},
		{"one known value is enough", RouteConfig{Match: eq("category", "authentication", "category", "availability")}, ""},
		{"rule prefix", RouteConfig{MatchRE: map[string]string{"rule": "brute_force_.*"}}, ""},
		{"label a rule groups by", RouteConfig{Match: eq("user", "admin")}, ""},
		{"label no rule has, matching the missing value", RouteConfig{MatchRE: map[string]string{"tenant": "|acme"}}, ""},
		{"severity a rule has", RouteConfig{Match: eq("severity", "critical")}, ""},
		{"category nobody has", RouteConfig{Match: eq("category", "authentication")},
			"routes[0].match.category: no loaded rule has that category (categories: availability, brute_force); the route matches no alert (check the spelling)"},
		{"rule nobody has", RouteConfig{Match: eq("rule", "auth_bruteforce")},
			"routes[0].match.rule: no loaded rule has that name (rules: brute_force_source_ip, brute_force_user, error_spike, service_outage)"},
		{"rule regex matching no loaded rule", RouteConfig{MatchRE: map[string]string{"rule": "auth_.*"}}, "routes[0].match_re.rule: no loaded rule has that name"},
		{"severity nobody has", RouteConfig{Match: eq("severity", "info")}, "routes[0].match.severity: no loaded rule has that severity (severities: critical, high, medium)"},
		{"incident severity above a rule's", RouteConfig{Match: eq("severity", "medium", "incident_severity", "critical")}, ""},
		{"alerts without an incident", RouteConfig{Match: eq("incident_severity", "")}, ""},
		{"incident less severe than every rule", RouteConfig{Match: eq("incident_severity", "low")},
			"routes[0].match.incident_severity: no loaded rule's alerts can be in an incident of that severity: an incident is at least as severe as each of its alerts (rule severities: critical, high, medium)"},
		{"incident less severe than the rule", RouteConfig{Match: eq("rule", "service_outage", "incident_severity", "high")},
			"routes[0]: no loaded rule meets all its conditions together"},
		{"incident id", RouteConfig{MatchRE: map[string]string{"incident_id": "1a.*"}}, ""},
		{"label no rule groups by", RouteConfig{MatchRE: map[string]string{"path": "/login.*"}},
			"routes[0].match_re.path: no loaded rule groups by path (their labels: service, source_ip, user), and the condition does not match a missing label"},
		{"conditions no single rule meets", RouteConfig{Match: eq("category", "availability", "user", "admin")},
			"routes[0]: no loaded rule meets all its conditions together; the route matches no alert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.route.Receivers = []string{"console"}
			c := Config{Routes: []RouteConfig{tc.route}}
			got := c.Lint(loaded)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("Lint = %q, want no warning", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want)):
				t.Errorf("Lint = %q, want one warning starting %q", got, tc.want)
			}
		})
	}
}

func TestLintChecksEveryRoute(t *testing.T) {
	shipped, err := rules.Load("")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Routes: []RouteConfig{
		{Match: map[string]StringList{"category": {"authentication"}}, Receivers: []string{"a"}},
		{Match: map[string]StringList{"category": {"availability"}}, Receivers: []string{"a"}},
		{Match: map[string]StringList{"rule": {"auth_bruteforce"}}, Receivers: []string{"a"}},
		{Receivers: []string{"a"}},
	}}
	got := c.Lint(shipped)
	if len(got) != 2 || !strings.HasPrefix(got[0], "routes[0].") || !strings.HasPrefix(got[1], "routes[2].") {
		t.Errorf("Lint = %q, want warnings for routes[0] and routes[2]", got)
	}
}
