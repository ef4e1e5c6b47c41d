package admin

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/vigil-sec/vigil/detect"
)

func TestBaselinesListsTheBackendsBaselines(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, query string
		want        []string // rule of each baseline listed, in order
	}{
		{"all", "", []string{"error_spike", "latency_degradation"}},
		{"one rule", "?rule=latency_degradation", []string{"latency_degradation"}},
		{"unknown rule", "?rule=nope", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, "read", http.MethodGet, "/api/v1/baselines"+tc.query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got struct {
				Baselines []detect.BaselineStat `json:"baselines"`
			}
			if err := json.Unmarshal(body, &got); err != nil || got.Baselines == nil {
				t.Fatalf("body %s: %v; want a baselines list, empty rather than null", body, err)
			}
			var rules []string
			for _, b := range got.Baselines {
				rules = append(rules, b.Rule)
			}
			if len(rules) != len(tc.want) || (len(rules) > 0 && rules[0] != tc.want[0]) {
				t.Fatalf("baselines of rules %v, want %v", rules, tc.want)
			}
			if tc.query == "" {
				b := got.Baselines[0]
				if !b.Ready || b.Threshold != 0.012 || b.HistorySeconds != 1800 || b.Labels["service"] != "billing" || b.Check != "share" {
					t.Errorf("first baseline = %+v, want the ready error_spike baseline of billing as the backend gave it", b)
				}
			}
		})
	}
}
