package detect

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// mustRules parses YAML rules or fails the test.
func mustRules(t testing.TB, src string) []*Rule {
	t.Helper()
	rs, err := ParseRules("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	return rs
}

// recorder collects emitted transitions.
type recorder struct{ alerts []Alert }

func (r *recorder) emit(a Alert) { r.alerts = append(r.alerts, a) }

func (r *recorder) transitions() []string {
	var out []string
	for _, a := range r.alerts {
		out = append(out, fmt.Sprintf("%s/%s", a.Rule, a.Transition))
	}
	return out
}

func newEngine(t testing.TB, rules []*Rule, opts Options) (*Engine, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Emit = rec.emit
	if opts.StateMemory == 0 {
		opts.StateMemory = MinStateMemory
	}
	e, err := New(rules, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(e.Close)
	return e, rec
}

// ev is a login event at t0+at.
func ev(at time.Duration, status int, ip, user string) *event.Event {
	e := &event.Event{
		Time: t0.Add(at), Service: "auth", RequestID: fmt.Sprintf("r-%d-%s-%s", at, ip, user),
		Method: "POST", Endpoint: "/v1/auth/login", Status: status, User: user,
	}
	if ip != "" {
		e.SourceIP = netip.MustParseAddr(ip)
	}
	return e
}

func countTransitions(alerts []Alert, tr Transition) int {
	n := 0
	for _, a := range alerts {
		if a.Transition == tr {
			n++
		}
	}
	return n
}

const thresholdRule = `
rules:
  - name: fail_ip
    description: failures from one IP
    severity: high
    category: brute_force
    match: status == 401
    group_by: [source_ip]
    threshold: {count: 5, window: 1m}
`

func TestThresholdWindowEdges(t *testing.T) {
	tests := []struct {
		name    string
		offsets []time.Duration // event offsets, all from one IP
		firing  int
	}{
		{"N-1 within window", []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}, 0},
		{"N within window", []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second, 40 * time.Second}, 1},
		{"N spanning exactly the window", []time.Duration{0, 15 * time.Second, 30 * time.Second, 45 * time.Second, 60 * time.Second}, 1},
		{"N spread beyond window plus a bucket", []time.Duration{0, 20 * time.Second, 40 * time.Second, 60 * time.Second, 82 * time.Second}, 0},
		{"2N fire once", []time.Duration{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, thresholdRule), Options{Lateness: 5 * time.Second})
			for _, off := range tc.offsets {
				e.Process(ev(off, 401, "192.0.2.1", "alice"))
			}
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing transitions = %d, want %d (%v)", got, tc.firing, rec.transitions())
			}
			e.Flush()
			if got := countTransitions(rec.alerts, TransitionResolved); got != tc.firing {
				t.Fatalf("resolved transitions after flush = %d, want %d", got, tc.firing)
			}
		})
	}
}

func TestLateness(t *testing.T) {
	tests := []struct {
		name    string
		late    time.Duration // how far before the newest event the last failure is
		firing  int
		counted bool
	}{
		{"out of order within lateness counts", 4 * time.Second, 1, true},
		{"exactly at the watermark counts", 5 * time.Second, 1, true},
		{"beyond lateness is late", 6 * time.Second, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newEngine(t, mustRules(t, thresholdRule), Options{Lateness: 5 * time.Second})
			for i := range 4 {
				e.Process(ev(time.Duration(10+i)*time.Second, 401, "192.0.2.1", "alice"))
			}
			// A success from another IP moves event time forward.
			e.Process(ev(30*time.Second, 200, "198.51.100.1", "bob"))
			e.Process(ev(30*time.Second-tc.late, 401, "192.0.2.1", "alice"))
			if got := countTransitions(rec.alerts, TransitionFiring); got != tc.firing {
				t.Fatalf("firing = %d, want %d", got, tc.firing)
			}
			if late := e.Stats().Late; (late == 0) != tc.counted {
				t.Fatalf("late = %d, counted %v", late, tc.counted)
			}
		})
	}
}

func TestResolveAndRepeat(t *testing.T) {
	rules := mustRules(t, thresholdRule+`    resolve_after: 30s
    repeat_interval: 5m
`)
	e, rec := newEngine(t, rules, Options{Lateness: 5 * time.Second})
	// 1 failure every 5 s for 12 minutes: the condition holds throughout.
	for at := time.Duration(0); at < 12*time.Minute; at += 5 * time.Second {
		e.Process(ev(at, 401, "192.0.2.1", "alice"))
	}
	want := []string{"fail_ip/firing", "fail_ip/repeat", "fail_ip/repeat"}
	if got := rec.transitions(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("transitions = %v, want %v", got, want)
	}
	// Traffic from elsewhere moves the watermark on; the alert resolves once
	// the window has been under the threshold for 30 s.
	for at := 12 * time.Minute; at < 14*time.Minute; at += 5 * time.Second {
		e.Process(ev(at, 200, "198.51.100.1", "bob"))
	}
	if len(rec.alerts) != 4 || rec.alerts[3].Transition != TransitionResolved {
		t.Fatalf("transitions = %v, want a resolution", rec.transitions())
	}
	res := rec.alerts[3]
	// The fifth-newest failure is at 11:35; the 1m window (plus one 1 s
	// bucket) drops below 5 failures when it leaves, at about 12:36, and the
	// alert resolves 30 s later.
	if lo, hi := t0.Add(13*time.Minute+5*time.Second), t0.Add(13*time.Minute+8*time.Second); res.EndsAt.Before(lo) || res.EndsAt.After(hi) {
		t.Fatalf("ends_at = %v after start, want between 13m5s and 13m8s", res.EndsAt.Sub(t0))
	}
	if !res.StartsAt.Equal(rec.alerts[0].StartsAt) || res.Fingerprint != rec.alerts[0].Fingerprint {
		t.Fatalf("resolution does not match the firing alert: %+v vs %+v", res, rec.alerts[0])
	}
}
