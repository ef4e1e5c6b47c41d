package detect

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMutedTracksButDoesNotEmit(t *testing.T) {
	e, rec := newEngine(t, mustRules(t, thresholdRule), Options{})
	e.SetMuted(true)
	for i := range 5 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	if len(rec.alerts) != 0 {
		t.Fatalf("muted engine emitted %v", rec.transitions())
	}
	if f := e.Firing(); len(f) != 1 || f[0].Labels["source_ip"] != "192.0.2.1" {
		t.Fatalf("firing = %+v", f)
	}
	e.SetMuted(false)
	e.Process(ev(6*time.Second, 401, "192.0.2.1", "alice"))
	if len(rec.alerts) != 0 {
		t.Fatalf("alert already firing was announced again: %v", rec.transitions())
	}
	e.Flush()
	if got := rec.transitions(); len(got) != 1 || got[0] != "fail_ip/resolved" {
		t.Fatalf("transitions = %v, want the resolution", got)
	}
}

func TestAlertContent(t *testing.T) {
	rules := mustRules(t, thresholdRule+`    summary: '{{ .Labels.source_ip }} failed {{ .Value }} times (>= {{ .Threshold }}) in {{ .Window }}'
`)
	e, rec := newEngine(t, rules, Options{})
	for i := range 7 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	a := rec.alerts[0]
	if a.Summary != "192.0.2.1 failed 5 times (>= 5) in 1m0s" {
		t.Errorf("summary = %q", a.Summary)
	}
	if a.Description != "failures from one IP" || a.Category != "brute_force" || a.Severity != "high" {
		t.Errorf("alert = %+v", a)
	}
	if !a.StartsAt.Equal(t0.Add(4*time.Second)) || !a.EndsAt.IsZero() || a.State != StateFiring {
		t.Errorf("times/state = %v %v %v", a.StartsAt, a.EndsAt, a.State)
	}
	if len(a.Sample) != 5 || a.Sample[4] != ev(4*time.Second, 401, "192.0.2.1", "alice").RequestID {
		t.Errorf("sample = %v", a.Sample)
	}
	if a.Fingerprint != Fingerprint("fail_ip", map[string]string{"source_ip": "192.0.2.1"}) || len(a.Fingerprint) != 16 {
		t.Errorf("fingerprint = %q", a.Fingerprint)
	}
}

func TestFingerprintStable(t *testing.T) {
	// A fixed value: fingerprints must not change between releases, or a
	// restart would re-announce every firing alert.
	got := Fingerprint("brute_force_source_ip", map[string]string{"source_ip": "203.0.113.7", "a": "b"})
	if got != Fingerprint("brute_force_source_ip", map[string]string{"a": "b", "source_ip": "203.0.113.7"}) {
		t.Fatal("fingerprint depends on map order")
	}
	if got != "1b9869a2e5083f1d" {
		t.Fatalf("fingerprint = %s; changing it re-announces alerts after an upgrade", got)
	}
}

func TestMaxFiring(t *testing.T) {
	e, rec := newEngine(t, mustRules(t, thresholdRule), Options{MaxFiring: 2, Lateness: 10 * time.Second})
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		for i := range 5 {
			e.Process(ev(time.Duration(i)*time.Second, 401, ip, "u"))
		}
	}
	if len(rec.alerts) != 2 || e.Stats().Dropped != 1 {
		t.Fatalf("alerts = %v, dropped = %d", rec.transitions(), e.Stats().Dropped)
	}
}

func TestLiveTickResolves(t *testing.T) {
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, rec := newEngine(t, mustRules(t, thresholdRule), Options{Live: true, Now: clock, Lateness: 5 * time.Second})
	for i := range 5 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	// Traffic stops; the wall clock alone must resolve the alert.
	for s := 0; s < 300; s++ {
		e.Tick(t0.Add(time.Duration(s) * time.Second))
	}
	if got := rec.transitions(); len(got) != 2 || got[1] != "fail_ip/resolved" {
		t.Fatalf("transitions = %v", got)
	}
	// An event whose clock runs an hour ahead must not make everyone late.
	mu.Lock()
	now = t0.Add(5 * time.Minute)
	mu.Unlock()
	e.Process(ev(65*time.Minute, 200, "192.0.2.9", "x"))
	e.Process(ev(5*time.Minute-time.Second, 200, "192.0.2.9", "x"))
	if late := e.Stats().Late; late != 0 {
		t.Fatalf("late = %d after a clock running ahead", late)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e, _ := newEngine(t, mustRules(t, thresholdRule), Options{Registerer: reg})
	for i := range 5 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	e.Process(ev(0, 401, "192.0.2.1", "alice")) // late
	want := `
# HELP vigil_alerts_firing Alerts currently firing, by rule.
# TYPE vigil_alerts_firing gauge
vigil_alerts_firing{rule="fail_ip"} 1
# HELP vigil_alerts_total Alert transitions emitted, by rule, severity and transition (firing, repeat, resolved).
# TYPE vigil_alerts_total counter
vigil_alerts_total{rule="fail_ip",severity="high",state="firing"} 1
vigil_alerts_total{rule="fail_ip",severity="high",state="repeat"} 0
vigil_alerts_total{rule="fail_ip",severity="high",state="resolved"} 0
# HELP vigil_events_late_total Events older than the watermark, left out of windows.
# TYPE vigil_events_late_total counter
vigil_events_late_total 1
# HELP vigil_rule_evaluations_total Events a rule was evaluated on.
# TYPE vigil_rule_evaluations_total counter
vigil_rule_evaluations_total{rule="fail_ip"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"vigil_alerts_firing", "vigil_alerts_total", "vigil_events_late_total", "vigil_rule_evaluations_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_detect_state_bytes", "vigil_detect_state_capacity_bytes"); err != nil || n != 2 {
		t.Fatalf("state gauges: %d, %v", n, err)
	}
	e.Close()
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Fatalf("%d metrics left after Close", n)
	}
	// A new engine can register on the same registry after Close.
	e2, _ := newEngine(t, mustRules(t, thresholdRule), Options{Registerer: reg})
	e2.Close()
}

func TestConcurrentUse(t *testing.T) {
	e, _ := newEngine(t, mustRules(t, thresholdRule+distinctRule[len("rules:\n")+1:]), Options{Live: true, Now: func() time.Time { return t0 }})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			e.Process(ev(time.Duration(i)*time.Millisecond, 401, "192.0.2.1", "u"))
		}
	})
	wg.Go(func() {
		for range 200 {
			e.Tick(t0)
			_ = e.Firing()
			_ = e.RuleStats()
		}
	})
	wg.Wait()
	if st := e.RuleStats(); st[0].Evaluations != 2000 || st[0].Firing != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestLiveBacklogIsJudgedOnEventTime checks that a live engine working
// through a backlog (events an hour old, as after a restart or an outage)
// counts them and fires, because only Tick moves the watermark by the wall
// clock, and the daemon ticks only once it has caught up.
func TestLiveBacklogIsJudgedOnEventTime(t *testing.T) {
	clock := func() time.Time { return t0.Add(time.Hour) }
	e, rec := newEngine(t, mustRules(t, thresholdRule), Options{Live: true, Now: clock, Lateness: 5 * time.Second})
	for i := range 5 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	if late := e.Stats().Late; late != 0 {
		t.Fatalf("late = %d for a backlog an hour old; want it judged on event time", late)
	}
	if got := rec.transitions(); len(got) != 1 || got[0] != "fail_ip/firing" {
		t.Fatalf("transitions = %v, want the backlog's alert to fire", got)
	}
	e.Tick(clock()) // caught up: the wall clock resolves it
	if got := rec.transitions(); len(got) != 2 || got[1] != "fail_ip/resolved" {
		t.Fatalf("transitions after Tick = %v", got)
	}
}

// TestReceivedBoundsTheWatermark checks that an event whose clock runs ahead
// moves the watermark no further than when it was received, in replay of a
// stream (Received set) as live: the events that arrived after it, with
// their true times, are not late.
func TestReceivedBoundsTheWatermark(t *testing.T) {
	e, rec := newEngine(t, mustRules(t, thresholdRule), Options{Lateness: 5 * time.Second})
	ahead := ev(4*time.Minute, 200, "192.0.2.9", "x")
	ahead.Received = t0
	e.Process(ahead)
	for i := range 5 {
		x := ev(time.Duration(i+1)*time.Second, 401, "192.0.2.1", "alice")
		x.Received = x.Time
		e.Process(x)
	}
	if late := e.Stats().Late; late != 0 {
		t.Fatalf("late = %d after an event 4 minutes ahead of its arrival", late)
	}
	if got := rec.transitions(); len(got) != 1 || got[0] != "fail_ip/firing" {
		t.Fatalf("transitions = %v, want the attack to fire", got)
	}
}

// TestLabelHookRewritesBeforeFingerprint checks that Options.Label rewrites
// label values before the fingerprint and templates are computed, on every
// way an alert leaves the engine.
func TestLabelHookRewritesBeforeFingerprint(t *testing.T) {
	rules := mustRules(t, thresholdRule+`    summary: 'from {{ .Labels.source_ip }}'
`)
	hide := func(name, v string) string { return name + ":" + strings.ToUpper(v[:1]) }
	e, rec := newEngine(t, rules, Options{Label: hide})
	for i := range 5 {
		e.Process(ev(time.Duration(i)*time.Second, 401, "192.0.2.1", "alice"))
	}
	want := map[string]string{"source_ip": "source_ip:1"}
	for _, a := range append(rec.alerts, e.Firing()...) {
		if a.Labels["source_ip"] != want["source_ip"] || a.Fingerprint != Fingerprint("fail_ip", want) || a.Summary != "from source_ip:1" {
			t.Fatalf("alert = %+v; want only rewritten values", a)
		}
	}
	if len(rec.alerts) != 1 {
		t.Fatalf("transitions = %v", rec.transitions())
	}
}
