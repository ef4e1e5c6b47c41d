package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true}, // in the past: retry now
		{"999999999", 24 * time.Hour, true},        // capped
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tc := range cases {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	now := time.Now()
	h := http.Header{"Retry-After": {"3"}}
	cases := []struct {
		name string
		err  error
		want Class
	}{
		{"503 with Retry-After", StatusError(503, h, nil, now), Class{Retryable: true, RetryAfter: 3 * time.Second}},
		{"429 with Retry-After", StatusError(429, h, nil, now), Class{Retryable: true, RetryAfter: 3 * time.Second}},
		{"500 ignores Retry-After", StatusError(500, h, nil, now), Class{Retryable: true}},
		{"408", StatusError(408, nil, nil, now), Class{Retryable: true}},
		{"404", StatusError(404, nil, nil, now), Class{}},
		{"410 disables", StatusError(410, nil, nil, now), Class{Disable: true}},
		{"wrapped", fmt.Errorf("slack: %w", StatusError(502, nil, nil, now)), Class{Retryable: true}},
		{"transport", TransportError(errors.New("connection refused")), Class{Retryable: true}},
		{"permanent", Permanent(errors.New("bad payload")), Class{}},
		{"unknown errors are retried", errors.New("boom"), Class{Retryable: true}},
	}
	for _, tc := range cases {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestHTTPKeepsURLsOutOfErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	h := NewHTTP(nil, 0, nil)
	_, err = h.Post(t.Context(), "http://"+addr+"/services/T0/B0/SECRET-PATH", nil, []byte("{}"))
	if err == nil || strings.Contains(err.Error(), "SECRET-PATH") {
		t.Fatalf("err = %v, want a failure that does not quote the URL", err)
	}
	if !Classify(err).Retryable {
		t.Errorf("connection refused should be retryable")
	}
	if _, err := h.Post(t.Context(), "http://\x7f/SECRET-PATH", nil, nil); err == nil || strings.Contains(err.Error(), "SECRET-PATH") {
		t.Errorf("invalid URL: err = %v", err)
	}
}

func TestHTTPLimitsBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream\x00 down\n"+strings.Repeat("x", 5000))
			return
		}
		fmt.Fprint(w, strings.Repeat("y", 2048))
	}))
	defer srv.Close()
	h := NewHTTP(nil, 1024, nil)
	if _, err := h.Post(t.Context(), srv.URL+"/big", nil, nil); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("large body: err = %v, want ErrBodyTooLarge", err)
	}
	_, err := h.Post(t.Context(), srv.URL+"/fail", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway: upstream down xxx") || len(err.Error()) > 300 {
		t.Errorf("err = %q, want the status and a short printable excerpt", err)
	}
	exact := NewHTTP(nil, 2048, nil)
	if b, err := exact.Post(t.Context(), srv.URL+"/big", nil, nil); err != nil || len(b) != 2048 {
		t.Errorf("body at the limit: %d bytes, %v", len(b), err)
	}
}

func TestHTTPAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := NewHTTP(nil, 0, nil).Post(ctx, srv.URL, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !Classify(err).Retryable {
		t.Errorf("err = %v, want a retryable deadline error", err)
	}
}

func TestDigestSummaryAndHeadline(t *testing.T) {
	alerts := []detect.Alert{{Rule: "b"}, {Rule: "a"}, {Rule: "b"}}
	if got, want := DigestSummary(alerts), "3 more alerts: 2 × b, 1 × a"; got != want {
		t.Errorf("DigestSummary = %q, want %q", got, want)
	}
	if got, want := DigestSummary(alerts[:1]), "1 more alert: 1 × b"; got != want {
		t.Errorf("DigestSummary = %q, want %q", got, want)
	}
	a := detect.Alert{Rule: "r", Severity: "high", Transition: detect.TransitionRepeat, Summary: "s"}
	if got, want := Headline(a), "STILL FIRING [high] r: s"; got != want {
		t.Errorf("Headline = %q, want %q", got, want)
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    float64
		unit string
		want string
	}{
		{0.811765, detect.UnitShare, "81.2%"},
		{0.5, detect.UnitShare, "50.0%"},
		{1, detect.UnitShare, "100.0%"},
		{0, detect.UnitShare, "0.0%"},
		{57, "", "57"},
		{1234567, "", "1234567"},
		{12.5, "", "12.5"},
		{1.0 / 3, "", "0.33"},
		{250, detect.UnitMS, "250 ms"},
		{1234.5678, detect.UnitMS, "1234.57 ms"},
	}
	for _, tc := range cases {
		if got := FormatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("FormatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

func TestConditionShowsEachCheckInItsUnit(t *testing.T) {
	cases := []struct {
		name string
		a    detect.Alert
		want string
	}{
		{"named condition", detect.Alert{Condition: "fast", Values: map[string]float64{"share": 0.8117, "count": 12}}, "fast: count 12, share 81.2%"},
		{"every unit", detect.Alert{Values: map[string]float64{"rate": 2.5, "percentile": 812.345, "distinct_share": 0.25, "distinct": 40, "events": 300}},
			"distinct 40, distinct_share 25.0%, events 300, percentile 812.35 ms, rate 2.5/s"},
		{"name only", detect.Alert{Condition: "sustained"}, "sustained"},
		{"nothing", detect.Alert{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Condition(tc.a); got != tc.want {
				t.Errorf("Condition = %q, want %q", got, tc.want)
			}
		})
	}
}
