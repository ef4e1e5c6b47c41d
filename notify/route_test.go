package notify

import (
	"slices"
	"testing"

	"github.com/vigil-sec/vigil/detect"
)

func TestRouting(t *testing.T) {
	routes := []RouteConfig{
		{Match: map[string]StringList{"severity": {"critical"}}, Receivers: []string{"pager", "oncall"}, Continue: true},
		{Match: map[string]StringList{"severity": {"high", "critical"}, "category": {"brute_force"}}, Receivers: []string{"oncall", "siem"}},
		{MatchRE: map[string]string{"rule": "error_.*"}, Receivers: []string{"sre"}},
		{Match: map[string]StringList{"service": {"billing"}}, Receivers: []string{"billing"}, Continue: true},
		{MatchRE: map[string]string{"user": "svc-.*"}, Receivers: []string{"svc"}},
		{Receivers: []string{"console"}},
	}
	r, err := newRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	alert := func(rule, severity, category string, labels map[string]string) detect.Alert {
		return detect.Alert{Rule: rule, Severity: severity, Category: category, Labels: labels}
	}
	cases := []struct {
		name  string
		alert detect.Alert
		want  []string
	}{
		{"critical auth: continue, then first match, each receiver once", alert("brute_force_user", "critical", "brute_force", nil), []string{"pager", "oncall", "siem"}},
		{"high auth stops at its route", alert("brute_force_user", "high", "brute_force", nil), []string{"oncall", "siem"}},
		{"high non-auth falls through", alert("scan", "high", "recon", nil), []string{"console"}},
		{"regex matches the whole value", alert("error_spike", "low", "", nil), []string{"sre"}},
		{"regex is anchored", alert("no_error_spike", "low", "", nil), []string{"console"}},
		{"regex dot matches a newline an attacker put in a label", alert("scan", "low", "", map[string]string{"user": "svc-a\nb"}), []string{"svc"}},
		{"continue route then default", alert("scan", "low", "", map[string]string{"service": "billing"}), []string{"billing", "console"}},
		{"fields win over same-named labels", alert("scan", "low", "", map[string]string{"severity": "critical"}), []string{"console"}},
		{"critical other category: continue then default", alert("scan", "critical", "recon", nil), []string{"pager", "oncall", "console"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := r.receivers(alertLabels(tc.alert)); !slices.Equal(got, tc.want) {
				t.Errorf("receivers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	eq := func(k string, vs ...string) map[string]StringList { return map[string]StringList{k: vs} }
	cases := []struct {
		name string
		a, b RouteConfig
		want bool
	}{
		{"catch-all covers anything", RouteConfig{}, RouteConfig{Match: eq("severity", "high")}, true},
		{"wider value set covers narrower", RouteConfig{Match: eq("severity", "high", "critical")}, RouteConfig{Match: eq("severity", "high")}, true},
		{"narrower does not cover wider", RouteConfig{Match: eq("severity", "high")}, RouteConfig{Match: eq("severity", "high", "critical")}, false},
		{"extra condition in b still covered", RouteConfig{Match: eq("severity", "high")}, RouteConfig{Match: map[string]StringList{"severity": {"high"}, "rule": {"x"}}}, true},
		{"condition missing in b", RouteConfig{Match: eq("rule", "x")}, RouteConfig{}, false},
		{"same regex", RouteConfig{MatchRE: map[string]string{"rule": "a.*"}}, RouteConfig{MatchRE: map[string]string{"rule": "a.*"}}, true},
		{"different regex is not judged", RouteConfig{MatchRE: map[string]string{"rule": "a.*"}}, RouteConfig{MatchRE: map[string]string{"rule": "ab.*"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := covers(&tc.a, &tc.b); got != tc.want {
				t.Errorf("covers = %v, want %v", got, tc.want)
			}
		})
	}
}
