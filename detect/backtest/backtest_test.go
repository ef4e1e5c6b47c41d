package backtest

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func alert(rule string, at time.Duration, incident string, labels ...string) detect.Alert {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return detect.Alert{Rule: rule, Transition: detect.TransitionFiring, StartsAt: t0.Add(at), Labels: l, IncidentID: incident}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		key, labels map[string]string
		want        bool
	}{
		{map[string]string{"source_ip": "203.0.113.7"}, map[string]string{"source_ip": "203.0.113.7"}, true},
		{map[string]string{"source_ip": "203.0.113.7"}, map[string]string{"source_ip": "203.0.113.8"}, false},
		{map[string]string{"source_prefix": "2001:db8:1:2::/64"}, map[string]string{"source_ip": "2001:db8:1:2::99"}, true},
		{map[string]string{"source_prefix": "2001:db8:1:2::/64"}, map[string]string{"source_prefix": "2001:db8:1:2::/64"}, true},
		{map[string]string{"source_ip": "203.0.113.7"}, map[string]string{"source_prefix": "203.0.113.0/24"}, true},
		{map[string]string{"user": "alice"}, map[string]string{"source_ip": "203.0.113.7"}, false},
		{map[string]string{"service": "auth", "endpoint": "/v1/auth/login"}, map[string]string{"service": "auth", "endpoint": "/v1/auth/login"}, true},
		{map[string]string{"service": "auth", "endpoint": "/v1/auth/login"}, map[string]string{"service": "auth", "endpoint": "/v1/x"}, false},
		{map[string]string{"service": "auth", "endpoint": "/v1/auth/login"}, map[string]string{"service": "auth"}, true},
	}
	for _, tc := range tests {
		if got := Matches(tc.key, tc.labels); got != tc.want {
			t.Errorf("Matches(%v, %v) = %v, want %v", tc.key, tc.labels, got, tc.want)
		}
	}
}

func TestScore(t *testing.T) {
	truth := Truth{T0: t0,
		Incidents: []Incident{
			{ID: "bf-1", Attack: "brute-force", Key: map[string]string{"source_ip": "203.0.113.7"}, Start: 100, End: 200},
			{ID: "bf-2", Attack: "brute-force", Key: map[string]string{"source_ip": "203.0.113.9"}, Start: 300, End: 400},
			{ID: "dist-1", Attack: "distributed", Key: map[string]string{"user": "bob"}, Start: 500, End: 900},
		},
		Benign: []Benign{{Pattern: "office-nat", Key: map[string]string{"source_ip": "198.51.100.20"}}},
	}
	alerts := []detect.Alert{
		alert("brute_force_source", 106*time.Second, "i1", "source_ip", "203.0.113.7"),
		alert("brute_force_user", 130*time.Second, "i1", "user", "alice"), // correlated with bf-1
		alert("brute_force_source", 310*time.Second, "i2", "source_ip", "203.0.113.9"),
		alert("brute_force_source", 320*time.Second, "i3", "source_ip", "203.0.113.9"), // a second page
		alert("credential_stuffing", 1000*time.Second, "i4", "source_ip", "198.51.100.20"),
		alert("error_spike", 2000*time.Second, "i5", "service", "billing"),
		{Rule: "brute_force_source", Transition: detect.TransitionResolved, StartsAt: t0.Add(106 * time.Second), Labels: map[string]string{"source_ip": "203.0.113.7"}},
	}
	rep := Score(truth, alerts, Options{})
	r := rep.Results
	if !r[0].Detected || r[0].Delay != 6*time.Second || r[0].Alerts != 1 || r[0].Incidents != 1 {
		t.Errorf("bf-1 = %+v", r[0])
	}
	if !r[1].Detected || r[1].Alerts != 2 || r[1].Incidents != 2 {
		t.Errorf("bf-2 = %+v, want two alerts on two incidents", r[1])
	}
	if r[2].Detected {
		t.Errorf("dist-1 detected: %+v", r[2])
	}
	if len(rep.BenignAlerts) != 1 || rep.BenignAlerts[0].Pattern != "office-nat" {
		t.Errorf("benign alerts = %+v", rep.BenignAlerts)
	}
	if len(rep.Unattributed) != 1 || rep.Unattributed[0].Rule != "error_spike" {
		t.Errorf("unattributed = %+v; the per-user alert correlated with bf-1 must not count", rep.Unattributed)
	}
	if rep.Recall < 0.66 || rep.Recall > 0.67 {
		t.Errorf("recall = %g", rep.Recall)
	}
	s := rep.Summary()
	if len(s) != 2 || s[0].Attack != "brute-force" || s[0].Detected != 2 || s[0].MedianDelay != 8*time.Second || s[0].MaxPages != 2 {
		t.Errorf("summary = %+v", s)
	}
}

func TestReadTruth(t *testing.T) {
	ok := `{"t0":"2026-01-05T09:00:00Z","incidents":[{"id":"a","attack":"x","key":{"user":"bob"},"start":1,"end":2,"params":{"rate":1}}],"benign":[]}`
	if _, err := ReadTruth(strings.NewReader(ok)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"incidents":[{"id":"a","start":1,"end":2}]}`, `{"incidents":[{"id":"a","key":{"u":"b"},"start":3,"end":2}]}`,
		`{"incidents":[{"id":"a","key":{"u":"b"},"start":-1,"end":2}]}`, `{"benign":[{"pattern":"p","key":{}}]}`,
		`{"benign":[{"pattern":"p","key":{"u":"b"},"start":5,"end":2}]}`, `{"nope":1}`} {
		if _, err := ReadTruth(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
