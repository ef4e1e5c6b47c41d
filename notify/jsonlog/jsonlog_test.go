package jsonlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

func TestOneLinePerNotification(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := New(&buf, func() time.Time { return now })
	hostile := detect.Alert{Rule: "r", Severity: "high", Transition: detect.TransitionFiring,
		Labels: map[string]string{"user": "x\n{\"forged\":true}"}}
	for _, n := range []*receiver.Notification{
		{ID: "1", Receiver: "console", Kind: receiver.KindFiring, Alerts: []detect.Alert{hostile}},
		{ID: "2", Receiver: "console", Kind: receiver.KindDigest, Alerts: []detect.Alert{hostile, hostile}},
	} {
		if _, err := l.Send(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), buf.String())
	}
	var first, second Record
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.ID != "1" || first.Kind != receiver.KindFiring || !first.Time.Equal(now) || first.Alerts[0].Labels["user"] != hostile.Labels["user"] {
		t.Errorf("first = %+v", first)
	}
	if second.Kind != receiver.KindDigest || second.Summary != "2 more alerts: 2 × r" {
		t.Errorf("second = %+v", second)
	}
}

func TestDetailsExplainTheAlert(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, time.Now)
	a := detect.Alert{Rule: "brute_force_source_ip", Severity: "high", Transition: detect.TransitionFiring,
		Value: 0.9, Threshold: 0.8, Unit: detect.UnitShare, Window: detect.Duration(15 * time.Second),
		Condition: "fast", Values: map[string]float64{"count": 12, "share": 0.9},
		IncidentID: "1a2b3c4d5e6f7a8b", IncidentSeverity: "critical", Attack: []string{"T1110.001"}, AppSensor: []string{"AE3"}}
	if _, err := l.Send(t.Context(), &receiver.Notification{ID: "1", Kind: receiver.KindFiring, Alerts: []detect.Alert{a}}); err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	want := "90.0% (threshold 80.0% over 15s); fast: count 12, share 90.0%; incident 1a2b3c4d5e6f7a8b (critical); ATT&CK T1110.001 · AppSensor AE3"
	if r.Details != want {
		t.Errorf("details = %q, want %q", r.Details, want)
	}
	if r.Alerts[0].IncidentID != a.IncidentID || r.Alerts[0].IncidentSeverity != "critical" {
		t.Errorf("alert = %+v, want its incident_id and incident_severity", r.Alerts[0])
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteFailureIsRetryable(t *testing.T) {
	_, err := New(failing{}, time.Now).Send(t.Context(), &receiver.Notification{Kind: receiver.KindFiring, Alerts: []detect.Alert{{}}})
	if err == nil || !receiver.Classify(err).Retryable {
		t.Errorf("err = %v, want a retryable failure", err)
	}
}
