package alertmanager

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

type am struct {
	*httptest.Server
	mu     sync.Mutex
	posts  [][]Alert
	status int
}

func newAM(t *testing.T, status int) *am {
	a := &am{status: status}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var alerts []Alert
		_ = json.Unmarshal(b, &alerts)
		a.mu.Lock()
		a.posts = append(a.posts, alerts)
		a.mu.Unlock()
		w.WriteHeader(a.status)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *am) received() [][]Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.posts
}

func TestFiringAndResolved(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)
	a1, a2 := newAM(t, http.StatusOK), newAM(t, http.StatusOK)
	rcv, err := New(Config{URLs: []string{a1.URL + "/", a2.URL}, FiringTTL: time.Hour}, receiver.NewHTTP(nil, 0, nil), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	alert := detect.Alert{
		Rule: "brute_force_user", Severity: "high", Category: "brute_force", Transition: detect.TransitionFiring,
		Labels: map[string]string{"user": "admin", "http.path": "/login"}, Value: 57, Threshold: 20,
		Window: detect.Duration(5 * time.Minute), StartsAt: now.Add(-5 * time.Minute), Fingerprint: "fp", Summary: "57 failed logins",
	}
	if _, err := rcv.Send(t.Context(), &receiver.Notification{Kind: receiver.KindFiring, Alerts: []detect.Alert{alert}}); err != nil {
		t.Fatal(err)
	}
	resolved := alert
	resolved.Transition, resolved.EndsAt = detect.TransitionResolved, now.Add(-time.Minute)
	if _, err := rcv.Send(t.Context(), &receiver.Notification{Kind: receiver.KindResolved, Alerts: []detect.Alert{resolved}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*am{a1, a2} {
		posts := a.received()
		if len(posts) != 2 {
			t.Fatalf("%d posts, want firing and resolved at every Alertmanager", len(posts))
		}
		f, r := posts[0][0], posts[1][0]
		wantLabels := map[string]string{"alertname": "brute_force_user", "severity": "high", "category": "brute_force", "user": "admin", "http_path": "/login"}
		for k, v := range wantLabels {
			if f.Labels[k] != v {
				t.Errorf("label %s = %q, want %q (labels %v)", k, f.Labels[k], v, f.Labels)
			}
		}
		if f.Annotations["summary"] != "57 failed logins" || f.Annotations["value"] != "57" || f.Annotations["vigil_fingerprint"] != "fp" {
			t.Errorf("annotations = %v", f.Annotations)
		}
		if !f.StartsAt.Equal(alert.StartsAt) || !f.EndsAt.Equal(now.Add(time.Hour)) {
			t.Errorf("firing startsAt %s endsAt %s, want start and now+firing_ttl", f.StartsAt, f.EndsAt)
		}
		if !r.EndsAt.Equal(resolved.EndsAt) {
			t.Errorf("resolved endsAt %s, want %s", r.EndsAt, resolved.EndsAt)
		}
	}
}

func TestAnnotationsShowValuesInTheirUnit(t *testing.T) {
	a := newAM(t, http.StatusOK)
	rcv, err := New(Config{URLs: []string{a.URL}}, receiver.NewHTTP(nil, 0, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	alert := detect.Alert{Rule: "service_outage", Severity: "critical", Category: "availability", Transition: detect.TransitionFiring,
		Value: 0.811765, Threshold: 0.5, Unit: detect.UnitShare, Fingerprint: "fp"}
	if _, err := rcv.Send(t.Context(), &receiver.Notification{Kind: receiver.KindFiring, Alerts: []detect.Alert{alert}}); err != nil {
		t.Fatal(err)
	}
	ann := a.received()[0][0].Annotations
	if ann["value"] != "81.2%" || ann["threshold"] != "50.0%" {
		t.Errorf("value %q, threshold %q; want 81.2%% and 50.0%%", ann["value"], ann["threshold"])
	}
}

// TestIncidentGroupsAlerts checks that an alert's incident reaches
// Alertmanager as the incident_id label, the same on its firing and its
// resolve, which group_by: [incident_id] groups on, and its incident's
// severity, condition and references as annotations.
func TestIncidentGroupsAlerts(t *testing.T) {
	a := newAM(t, http.StatusOK)
	rcv, err := New(Config{URLs: []string{a.URL}}, receiver.NewHTTP(nil, 0, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	alert := detect.Alert{Rule: "brute_force_source_ip", Severity: "high", Category: "brute_force", Transition: detect.TransitionFiring,
		Labels: map[string]string{"source_ip": "203.0.113.7"}, Fingerprint: "fp", IncidentID: "1a2b3c4d5e6f7a8b", IncidentSeverity: "high",
		Condition: "fast", Values: map[string]float64{"count": 12, "share": 0.9}, Unit: detect.UnitShare,
		Attack: []string{"T1110.001"}, AppSensor: []string{"AE3"}}
	resolved := alert
	resolved.Transition, resolved.IncidentSeverity, resolved.EndsAt = detect.TransitionResolved, "critical", time.Now()
	for _, al := range []detect.Alert{alert, resolved} {
		if _, err := rcv.Send(t.Context(), &receiver.Notification{Kind: receiver.Kind(al.Transition), Alerts: []detect.Alert{al}}); err != nil {
			t.Fatal(err)
		}
	}
	posts := a.received()
	for i, wantSeverity := range []string{"high", "critical"} {
		got := posts[i][0]
		if got.Labels["incident_id"] != "1a2b3c4d5e6f7a8b" || got.Labels["incident_severity"] != "" {
			t.Errorf("post %d labels = %v; want incident_id and no label that changes during the alert", i, got.Labels)
		}
		want := map[string]string{"incident_severity": wantSeverity, "condition": "fast: count 12, share 90.0%", "attack": "T1110.001", "appsensor": "AE3"}
		for k, v := range want {
			if got.Annotations[k] != v {
				t.Errorf("post %d annotation %s = %q, want %q", i, k, got.Annotations[k], v)
			}
		}
	}
}

func TestSeveralURLs(t *testing.T) {
	cases := []struct {
		name      string
		statuses  []int
		wantErr   bool
		retryable bool
		disable   bool
	}{
		{"one of two accepts", []int{http.StatusServiceUnavailable, http.StatusOK}, false, false, false},
		{"all fail, one retryable", []int{http.StatusServiceUnavailable, http.StatusBadRequest}, true, true, false},
		{"all fail permanently", []int{http.StatusBadRequest, http.StatusBadRequest}, true, false, false},
		{"all gone", []int{http.StatusGone, http.StatusGone}, true, false, true},
		{"one gone, one retryable", []int{http.StatusGone, http.StatusBadGateway}, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var urls []string
			for _, s := range tc.statuses {
				urls = append(urls, newAM(t, s).URL)
			}
			rcv, err := New(Config{URLs: urls}, receiver.NewHTTP(nil, 0, nil), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			_, err = rcv.Send(t.Context(), &receiver.Notification{Kind: receiver.KindFiring, Alerts: []detect.Alert{{Rule: "r"}}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			c := receiver.Classify(err)
			if c.Retryable != tc.retryable || c.Disable != tc.disable {
				t.Errorf("class = %+v, want retryable %v disable %v", c, tc.retryable, tc.disable)
			}
			if !strings.Contains(err.Error(), "alertmanager 2 of 2") {
				t.Errorf("err = %v, want each endpoint's failure", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"valid", Config{URLs: []string{"http://127.0.0.1:9093"}}, true},
		{"none", Config{}, false},
		{"relative", Config{URLs: []string{"am:9093"}}, false},
		{"negative ttl", Config{URLs: []string{"http://a:9093"}, FiringTTL: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}
