package detect_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/rules"
	"github.com/vigil-sec/vigil/simulate"
)

// shippedRules loads the default rule set with its operator lists filled
// in as the simulator expects them.
func shippedRules(t testing.TB) []*detect.Rule {
	t.Helper()
	var cidrs []string
	for _, p := range simulate.DefaultListedCIDRs {
		cidrs = append(cidrs, p.String())
	}
	rs, err := rules.LoadWith("", map[string]detect.ListSpec{
		"honey_users":       {Values: simulate.DefaultHoneyAccounts},
		"honey_endpoints":   {Values: simulate.DefaultHoneyEndpoints},
		"honey_paths":       {Values: simulate.DefaultHoneyEndpoints},
		"known_bad_sources": {CIDRs: cidrs, RaiseSeverity: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// simulated returns the events of a simulated scenario with every attack
// and benign look-alike.
func simulated(t testing.TB, o simulate.Options) []event.Event {
	t.Helper()
	o.Attacks, o.Benign = simulate.Attacks(), simulate.Benigns()
	sc, err := simulate.Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	s := sc.Stream()
	var ev event.Event
	for {
		if _, ok := s.Next(&ev); !ok {
			return evs
		}
		c := ev
		c.Attrs = maps.Clone(ev.Attrs)
		evs = append(evs, c)
	}
}

// feeder drives an engine through events as the daemon would: in live
// mode the wall clock is a little behind each event's time, and Tick
// runs whenever it enters a new second. What it does for event i depends
// only on the events, so two engines fed the same suffix see the same
// calls.
type feeder struct {
	evs  []event.Event
	live bool
	now  time.Time
}

func (f *feeder) clock() time.Time { return f.now }

func (f *feeder) step(e *detect.Engine, i int) {
	ev := &f.evs[i]
	if f.live {
		f.now = ev.Time.Add(300 * time.Millisecond)
		if i > 0 && ev.Time.Unix() != f.evs[i-1].Time.Unix() {
			e.Tick(f.now)
		}
	}
	e.Process(ev)
}

// pseudonym rewrites addresses and user names, as privacy.Pseudonymizer does.
func pseudonym(name, v string) string {
	if name != "source_ip" && name != "user" {
		return v
	}
	sum := sha256.Sum256([]byte("key\x00" + name + "\x00" + v))
	return "p:" + hex.EncodeToString(sum[:6])
}

type snapshotCase struct {
	name   string
	rules  func(t testing.TB) []*detect.Rule // default: shippedRules
	events func(t testing.TB) []event.Event
	live   bool
	label  func(name, v string) string
	// memory is the state budget (default 256 MiB); the smallest makes
	// the hot set and the cache evict.
	memory int
	cuts   []float64 // snapshot points, as fractions of the events
}

func snapshotCases() []snapshotCase {
	sim := func(seed uint64, rate float64, users int) func(testing.TB) []event.Event {
		return func(t testing.TB) []event.Event {
			return simulated(t, simulate.Options{Seed: seed, Duration: 40 * time.Minute, Rate: rate, Users: users})
		}
	}
	cuts := []float64{0.3, 0.55, 0.75, 0.9}
	return []snapshotCase{
		{name: "replay seed 11", events: sim(11, 60, 3000), cuts: cuts},
		{name: "replay seed 12", events: sim(12, 60, 3000), cuts: cuts},
		{name: "live with ticks seed 13", events: sim(13, 60, 3000), live: true, cuts: cuts},
		{name: "pseudonymised labels seed 14", events: sim(14, 60, 3000), live: true, label: pseudonym, cuts: cuts},
		{name: "state under pressure seed 15", events: sim(15, 300, 0), memory: detect.MinStateMemory, cuts: cuts},
		{name: "merged incidents and repeats", rules: mergeRules, events: mergeEvents, live: true,
			cuts: []float64{0.2, 0.3, 0.45, 0.7}},
	}
}

// mergeRules alert on failures per address and per user, repeating
// every two minutes.
func mergeRules(t testing.TB) []*detect.Rule {
	t.Helper()
	rs, err := detect.ParseRules("merge.yaml", []byte(mergeYAML))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

const mergeYAML = `
rules:
  - name: address_failures
    severity: high
    category: brute_force
    match: status == 401
    group_by: [source_ip]
    threshold: {count: 5, window: 1m}
    repeat_interval: 2m
  - name: user_failures
    severity: medium
    category: brute_force
    match: status == 401
    group_by: [user]
    threshold: {count: 5, window: 1m}
    repeat_interval: 2m
`

// mergeEvents is a quarter of an hour of logins in which two incidents
// merge: address A attacks user u1 (incident 1); address B fails on u3,
// then on u2 (incident 2, keyed by B and u2); then A fails on u2, whose
// alert meets both incidents. A keeps attacking for ten minutes, so its
// alerts repeat.
func mergeEvents(testing.TB) []event.Event {
	t0 := simulate.DefaultStart
	var evs []event.Event
	add := func(at time.Duration, status int, ip, user string) {
		evs = append(evs, event.Event{Time: t0.Add(at), Service: "auth", Method: "POST", Endpoint: "/v1/auth/login",
			Status: status, SourceIP: netip.MustParseAddr(ip), User: user, RequestID: fmt.Sprintf("r%d", len(evs))})
	}
	for at := time.Duration(0); at < 15*time.Minute; at += 2 * time.Second {
		add(at+time.Second, 200, fmt.Sprintf("10.0.%d.%d", at/time.Minute, at/time.Second%60), fmt.Sprintf("user%d", at/time.Second%97))
	}
	for at := time.Minute; at < 10*time.Minute; at += 5 * time.Second {
		add(at, 401, "192.0.2.10", "u1")
	}
	for i, user := range []string{"u3", "u3", "u3", "u3", "u2"} {
		add(2*time.Minute+time.Duration(i)*5*time.Second, 401, "198.18.0.20", user)
	}
	for i := range 4 {
		add(150*time.Second+time.Duration(i)*2*time.Second+500*time.Millisecond, 401, "192.0.2.10", "u2")
	}
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

// TestSnapshotRestoreEquivalence checks the property the daemon depends
// on: an engine restored from a snapshot taken after events E1, then fed
// E2, emits exactly the transitions the snapshotted engine emits for E2,
// and ends with the same firing alerts and watermark. The shipped rules
// run on simulated attacks; snapshots are taken at several points,
// attacks in progress.
func TestSnapshotRestoreEquivalence(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated traffic through the shipped rules")
	}
	for _, tc := range snapshotCases() {
		t.Run(tc.name, func(t *testing.T) {
			load := tc.rules
			if load == nil {
				load = shippedRules
			}
			checkEquivalence(t, load(t), tc)
		})
	}
}

func checkEquivalence(t *testing.T, rs []*detect.Rule, tc snapshotCase) {
	evs := tc.events(t)
	f := &feeder{evs: evs, live: tc.live}
	var got []detect.Alert
	opts := detect.Options{Lateness: 5 * time.Second, Live: tc.live, Now: f.clock, Label: tc.label, StateMemory: tc.memory}
	a := newSnapEngine(t, rs, opts, &got)
	type point struct {
		at, emitted, firing    int
		incidents, readyGroups int // incidents among the firing alerts, baselines ready
		snap                   []byte
	}
	var points []point
	for _, c := range tc.cuts {
		points = append(points, point{at: int(c * float64(len(evs)))})
	}
	p := 0
	for i := range evs {
		if p < len(points) && points[p].at == i {
			var buf bytes.Buffer
			if _, err := a.Snapshot(&buf); err != nil {
				t.Fatal(err)
			}
			pt := &points[p]
			pt.emitted, pt.snap = len(got), buf.Bytes()
			restoredNow(t, rs, opts, a, buf.Bytes(), f, i, p == 0)
			// After the comparison: Baselines refreshes their caches.
			pt.firing, pt.incidents, pt.readyGroups = atCut(a)
			p++
		}
		f.step(a, i)
	}
	wantFiring, wantWM := a.Firing(), a.Watermark()
	a.Flush()
	firingAtCut, readyAtCut := false, false
	for _, pt := range points {
		t.Logf("snapshot at event %d of %d: %d bytes, %d alerts firing in %d incidents, %d baselines ready, %d transitions after it",
			pt.at, len(evs), len(pt.snap), pt.firing, pt.incidents, pt.readyGroups, len(got)-pt.emitted)
		firingAtCut = firingAtCut || pt.incidents > 0
		readyAtCut = readyAtCut || pt.readyGroups > 0
		var out []detect.Alert
		b := newSnapEngine(t, rs, opts, &out)
		if err := b.Restore(bytes.NewReader(pt.snap)); err != nil {
			t.Fatal(err)
		}
		for i := pt.at; i < len(evs); i++ {
			f.step(b, i)
		}
		sameAlerts(t, fmt.Sprintf("firing after the snapshot at event %d", pt.at), b.Firing(), wantFiring)
		if wm := b.Watermark(); !wm.Equal(wantWM) {
			t.Errorf("snapshot at event %d: watermark %v, want %v", pt.at, wm, wantWM)
		}
		b.Flush()
		sameAlerts(t, fmt.Sprintf("transitions after the snapshot at event %d", pt.at), out, got[pt.emitted:])
	}
	if !firingAtCut {
		t.Error("no snapshot was taken while an alert fired in an incident; move the snapshot points into the attacks")
	}
	if tc.rules == nil && !readyAtCut {
		t.Error("no snapshot was taken with a baseline ready; move the snapshot points later")
	}
}

// atCut counts what fires at a snapshot point: alerts, their incidents,
// and the baselines that have their history.
func atCut(e *detect.Engine) (firing, incidents, ready int) {
	ids := map[string]bool{}
	for _, a := range e.Firing() {
		if a.IncidentID != "" {
			ids[a.IncidentID] = true
		}
		firing++
	}
	for _, b := range e.Baselines() {
		if b.Ready {
			ready++
		}
	}
	return firing, len(ids), ready
}

// restoredNow restores a's snapshot, taken before event at, into a new
// engine and checks that its state is a's, piece by piece. With replay
// set, it also checks that the restored engine ends the input there as an
// engine fed the same events does: same firing alerts, and the same
// resolutions and watermark after Flush.
func restoredNow(t *testing.T, rs []*detect.Rule, opts detect.Options, a *detect.Engine, snap []byte, f *feeder, at int, replay bool) {
	t.Helper()
	var out []detect.Alert
	b := newSnapEngine(t, rs, opts, &out)
	defer b.Close()
	if err := b.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if err := detect.SameState(a, b); err != nil {
		t.Fatalf("state restored from the snapshot at event %d differs: %v", at, err)
	}
	if !replay {
		return
	}
	var want []detect.Alert
	r := newSnapEngine(t, rs, opts, &want)
	defer r.Close()
	for i := range at {
		f.step(r, i)
	}
	sameAlerts(t, fmt.Sprintf("firing at the snapshot at event %d", at), b.Firing(), r.Firing())
	want = want[:0]
	b.Flush()
	r.Flush()
	sameAlerts(t, fmt.Sprintf("flushed at the snapshot at event %d", at), out, want)
	if x, y := b.Watermark(), r.Watermark(); !x.Equal(y) {
		t.Errorf("flushed at the snapshot at event %d: watermark %v, want %v", at, x, y)
	}
}

func newSnapEngine(t testing.TB, rs []*detect.Rule, opts detect.Options, out *[]detect.Alert) *detect.Engine {
	t.Helper()
	opts.Emit = func(a detect.Alert) { *out = append(*out, a) }
	e, err := detect.New(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// sameAlerts reports the first difference between two alert sequences.
func sameAlerts(t *testing.T, what string, got, want []detect.Alert) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: alert %d differs:\n got %+v\nwant %+v", what, i, got[i], want[i])
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d alerts, want %d", what, len(got), len(want))
	}
}

// TestSnapshotWhileProcessing takes snapshots while another goroutine
// feeds the engine: each must hold the state after some whole number of
// events, the same as an engine fed just those events. Events are 10 ms
// apart and lateness is zero, so a snapshot's watermark says how many.
func TestSnapshotWhileProcessing(t *testing.T) {
	t0 := simulate.DefaultStart
	evs := make([]event.Event, 50_000)
	for i := range evs {
		evs[i] = event.Event{Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Service: "auth", Method: "POST",
			Endpoint: "/v1/auth/login", Status: 401, SourceIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 61)}),
			User: "u" + strconv.Itoa(i%17), RequestID: "r" + strconv.Itoa(i)}
	}
	opts := detect.Options{StateMemory: detect.MinStateMemory}
	rs := mergeRules(t)
	var out, restored, replayed []detect.Alert
	e := newSnapEngine(t, rs, opts, &out)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range evs {
			e.Process(&evs[i])
		}
	}()
	var snaps [][]byte
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		var buf bytes.Buffer
		if _, err := e.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, buf.Bytes())
	}
	for _, snap := range snaps {
		b := newSnapEngine(t, rs, opts, &restored)
		if err := b.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
		fed := 0
		if wm := b.Watermark(); !wm.IsZero() {
			fed = int(wm.Sub(t0)/(10*time.Millisecond)) + 1
		}
		r := newSnapEngine(t, rs, opts, &replayed)
		for i := range fed {
			r.Process(&evs[i])
		}
		if _, err := r.Snapshot(io.Discard); err != nil { // the same cache housekeeping as e had
			t.Fatal(err)
		}
		if err := detect.SameState(r, b); err != nil {
			t.Fatalf("snapshot after %d events: %v", fed, err)
		}
		b.Close()
		r.Close()
	}
	t.Logf("%d snapshots", len(snaps))
}
