package detect_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// mergeSnapshot returns a snapshot of an engine with opts fed the first
// half of mergeEvents, alerts firing.
func mergeSnapshot(t testing.TB, opts detect.Options) []byte {
	t.Helper()
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	evs := mergeEvents(t)
	for i := range len(evs) / 3 {
		e.Process(&evs[i])
	}
	if len(e.Firing()) == 0 {
		t.Fatal("no alert fires at the snapshot")
	}
	var buf bytes.Buffer
	if _, err := e.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reseal replaces a snapshot's SHA-256 trailer with that of its contents.
func reseal(b []byte) []byte {
	if len(b) < sha256.Size {
		return b
	}
	out := slices.Clone(b[:len(b)-sha256.Size])
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// rewrite replaces a snapshot's options and state sections with what
// change makes of them, and reseals it.
func rewrite(snap []byte, change func(meta, state []byte) ([]byte, []byte)) []byte {
	head := len("VIGILSNP") + 1
	metaLen, n := binary.Uvarint(snap[head:])
	meta := snap[head+n : head+n+int(metaLen)]
	rest := snap[head+n+int(metaLen):]
	stateLen, m := binary.Uvarint(rest)
	state := rest[m : m+int(stateLen)]
	meta, state = change(meta, state)
	out := append(slices.Clone(snap[:head]), binary.AppendUvarint(nil, uint64(len(meta)))...)
	out = append(append(out, meta...), binary.AppendUvarint(nil, uint64(len(state)))...)
	out = append(append(out, state...), rest[m+int(stateLen):]...)
	return reseal(out)
}

// withStateMemory rewrites the state memory a snapshot's options record.
func withStateMemory(snap []byte, mem uint64) []byte {
	return rewrite(snap, func(meta, state []byte) ([]byte, []byte) {
		_, n := binary.Uvarint(meta)
		return append(binary.AppendUvarint(nil, mem), meta[n:]...), state
	})
}

// emptyAndUsable checks that e holds no state and then detects as a new
// engine does.
func emptyAndUsable(t *testing.T, e *detect.Engine, out *[]detect.Alert, rs []*detect.Rule, opts detect.Options) {
	t.Helper()
	if len(e.Firing()) != 0 || !e.Watermark().IsZero() {
		t.Fatalf("the engine has %d firing alerts and watermark %v after a failed restore", len(e.Firing()), e.Watermark())
	}
	var want []detect.Alert
	fresh := newSnapEngine(t, rs, opts, &want)
	for _, ev := range mergeEvents(t) {
		e.Process(&ev)
		fresh.Process(&ev)
	}
	if len(want) == 0 {
		t.Fatal("the scenario raised no alert")
	}
	sameAlerts(t, "after a failed restore", *out, want)
}

// TestRestoreRefuses checks that Restore refuses a snapshot of other rules
// or options, or one that is truncated or corrupt, saying why, and leaves
// the engine empty and usable.
func TestRestoreRefuses(t *testing.T) {
	base := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	good := mergeSnapshot(t, base)
	big := base
	big.StateMemory = 256 << 20 // a cache of two chunks per bucket; 32 and 64 MiB have one
	bigSnap := mergeSnapshot(t, big)
	otherRules := func(t testing.TB) []*detect.Rule {
		rs, err := detect.ParseRules("merge.yaml", []byte(strings.Replace(mergeYAML, "count: 5", "count: 6", 1)))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	tests := []struct {
		name     string
		snap     []byte
		rules    func(testing.TB) []*detect.Rule
		opts     func(*detect.Options)
		mismatch bool
		msg      string
	}{
		{name: "a changed rule", snap: good, rules: otherRules, mismatch: true, msg: `rule "address_failures" has changed`},
		{name: "a rule fewer", snap: good, rules: func(t testing.TB) []*detect.Rule { return mergeRules(t)[:1] },
			mismatch: true, msg: `rule "user_failures" of the snapshot is not loaded`},
		{name: "another state memory", snap: good, opts: func(o *detect.Options) { o.StateMemory = 2 * detect.MinStateMemory },
			mismatch: true, msg: "detect.state_memory is 32MiB in the snapshot, 64MiB here"},
		{name: "another lateness", snap: good, opts: func(o *detect.Options) { o.Lateness = 10 * time.Second },
			mismatch: true, msg: "detect.lateness is 5s in the snapshot, 10s here"},
		{name: "another format version", snap: reseal(append([]byte("VIGILSNP\x02"), good[9:]...)),
			mismatch: true, msg: "format version 2; this Vigil reads version 1"},
		{name: "empty", snap: nil, msg: "it ends within its header"},
		{name: "not a snapshot", snap: []byte("{\"rules\": []}\n"), msg: "not a Vigil detection snapshot"},
		{name: "cut in the options", snap: good[:12], msg: "it ends within its options section"},
		{name: "cut in half", snap: good[:len(good)/2], msg: "corrupt or truncated"},
		{name: "cut in the checksum", snap: good[:len(good)-1], msg: "it ends within its checksum"},
		{name: "a flipped byte", snap: flip(good, len(good)/2), msg: "its SHA-256 checksum does not match its contents"},
		{name: "a garbled state", snap: rewrite(good, func(meta, state []byte) ([]byte, []byte) { return meta, state[:len(state)/2] }),
			msg: "not decode"},
		{name: "a garbled options section", snap: rewrite(good, func(meta, state []byte) ([]byte, []byte) { return meta[:5], state }),
			msg: "its options section does not decode"},
		{name: "bytes after the checksum", snap: append(slices.Clone(good), 0), msg: "it has bytes after its checksum"},
		{name: "a cache of another size", snap: withStateMemory(bigSnap, detect.MinStateMemory), msg: "its window state cache does not load"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := mergeRules(t)
			if tc.rules != nil {
				rs = tc.rules(t)
			}
			opts := base
			if tc.opts != nil {
				tc.opts(&opts)
			}
			var out []detect.Alert
			e := newSnapEngine(t, rs, opts, &out)
			err := e.Restore(bytes.NewReader(tc.snap))
			if err == nil {
				t.Fatal("Restore accepted the snapshot")
			}
			t.Log(err)
			if errors.Is(err, detect.ErrSnapshotMismatch) != tc.mismatch || !strings.Contains(err.Error(), tc.msg) ||
				!strings.Contains(err.Error(), "rebuild its state by replaying events") {
				t.Fatalf("Restore: %v\nwant an error (mismatch %v) saying %q and what to do", err, tc.mismatch, tc.msg)
			}
			emptyAndUsable(t, e, &out, rs, opts)
		})
	}
}

func flip(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 0x55
	return out
}

// TestRestoreRefusesUsedEngine checks that Restore does not mix a
// snapshot into an engine that has state of its own, or is closed.
func TestRestoreRefusesUsedEngine(t *testing.T) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	snap := mergeSnapshot(t, opts)
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	evs := mergeEvents(t)
	e.Process(&evs[0])
	wm := e.Watermark()
	err := e.Restore(bytes.NewReader(snap))
	if err == nil || !strings.Contains(err.Error(), "restore into a new engine, before its first event") {
		t.Fatalf("Restore into a used engine: %v", err)
	}
	if !e.Watermark().Equal(wm) || len(e.Firing()) != 0 {
		t.Fatal("a refused Restore changed the engine")
	}
	closed := newSnapEngine(t, mergeRules(t), opts, &out)
	closed.Close()
	if err := closed.Restore(bytes.NewReader(snap)); err == nil {
		t.Fatal("Restore into a closed engine succeeded")
	}
	if _, err := closed.Snapshot(io.Discard); err == nil || !strings.Contains(err.Error(), "take the snapshot before Close") {
		t.Fatalf("Snapshot of a closed engine: %v", err)
	}
}

// TestRestoreWhileScraped restores while metrics are scraped: Restore
// replaces the window state cache, which Stats and the collector read
// (run with -race).
func TestRestoreWhileScraped(t *testing.T) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	snap := mergeSnapshot(t, opts)
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			e.Stats()
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	err := e.Restore(bytes.NewReader(snap))
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.StateGroups == 0 {
		t.Fatal("no state after Restore")
	}
}

// FuzzRestore checks that Restore never panics, and that an engine that
// accepted a snapshot keeps working. An input is either a whole snapshot,
// tried as it is and with a valid checksum, or a state section, put in a
// valid snapshot in place of the real one: most of a snapshot's bytes are
// the cache's files, which fastcache checks, and this way the fuzzer
// spends its time in the decoders behind the checksum.
func FuzzRestore(f *testing.F) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	good := mergeSnapshot(f, opts)
	var state []byte
	rewrite(good, func(meta, st []byte) ([]byte, []byte) { state = slices.Clone(st); return meta, st })
	f.Add(false, state)
	f.Add(false, state[:len(state)/2])
	f.Add(true, good[:64])
	f.Add(true, []byte("VIGILSNP\x01"))
	rs := mergeRules(f)
	evs := mergeEvents(f)
	f.Fuzz(func(t *testing.T, whole bool, data []byte) {
		snaps := [][]byte{data, reseal(data)}
		if !whole {
			snaps = [][]byte{rewrite(good, func(meta, _ []byte) ([]byte, []byte) { return meta, data })}
		}
		for _, snap := range snaps {
			e, err := detect.New(rs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if e.Restore(bytes.NewReader(snap)) == nil {
				for i := len(evs) / 3; i < len(evs); i += 7 {
					e.Process(&evs[i])
				}
				e.Flush()
				e.Firing()
			}
			e.Close()
		}
	})
}

// lockLog keeps the lock time Snapshot logs.
type lockLog struct{ held time.Duration }

func (l *lockLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *lockLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lockLog) WithGroup(string) slog.Handler            { return l }
func (l *lockLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "lock_held" {
			l.held = a.Value.Duration()
		}
		return true
	})
	return nil
}

// BenchmarkSnapshot snapshots and restores an engine running the shipped
// rules with the default state budget (256 MiB) after a simulated hour of
// traffic at the default rate, attacks included, and after that hour plus
// failed logins from a million addresses against as many users, which
// fills the state cache until it wraps. It reports the snapshot's size,
// how long Snapshot holds the engine's lock (intake's pause), and how long
// Restore takes; ns/op is one Snapshot and one Restore.
func BenchmarkSnapshot(b *testing.B) {
	rs := shippedRules(b)
	sc, err := simulate.Plan(simulate.Options{Seed: 101, Duration: time.Hour, Rate: simulate.DefaultRate,
		Attacks: simulate.Attacks(), Benign: simulate.Benigns()})
	if err != nil {
		b.Fatal(err)
	}
	for _, fill := range []int{0, 1_000_000} {
		name := "simulated hour"
		if fill > 0 {
			name = "full state"
		}
		b.Run(name, func(b *testing.B) {
			lock := &lockLog{}
			opts := detect.Options{Lateness: 5 * time.Second, Logger: slog.New(lock)}
			var out []detect.Alert
			e := newSnapEngine(b, rs, opts, &out)
			fillState(e, feedScenario(e, sc), fill)
			benchSnapshot(b, e, rs, opts, lock)
		})
	}
}

// feedScenario processes the events of sc and returns the last one's time.
func feedScenario(e *detect.Engine, sc *simulate.Scenario) time.Time {
	s := sc.Stream()
	var ev event.Event
	for {
		if _, ok := s.Next(&ev); !ok {
			return ev.Time
		}
		e.Process(&ev)
	}
}

// fillState sends n failed logins, each from another address (in other
// networks) against another user, within the minute after t.
func fillState(e *detect.Engine, t time.Time, n int) {
	for i := range n {
		ev := event.Event{Time: t.Add(time.Duration(i) * time.Minute / time.Duration(max(n, 1))), Service: "auth",
			RequestID: "fill-" + strconv.Itoa(i), Method: "POST", Endpoint: "/v1/auth/login", Status: 401,
			SourceIP: netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}), User: "fill" + strconv.Itoa(i)}
		e.Process(&ev)
	}
}

func benchSnapshot(b *testing.B, e *detect.Engine, rs []*detect.Rule, opts detect.Options, lock *lockLog) {
	st := e.Stats()
	var buf bytes.Buffer
	var snap, locked, restore time.Duration
	for b.Loop() {
		buf.Reset()
		start := time.Now()
		if _, err := e.Snapshot(&buf); err != nil {
			b.Fatal(err)
		}
		snap += time.Since(start)
		locked += lock.held
		r, err := detect.New(rs, opts)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := r.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
		restore += time.Since(start)
		r.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(buf.Len())/(1<<20), "snapshot-MiB")
	b.ReportMetric(float64(st.StateBytes)/(1<<20), "state-MiB")
	b.ReportMetric(float64(st.StateGroups), "groups")
	b.ReportMetric(snap.Seconds()*1e3/n, "snapshot-ms")
	b.ReportMetric(locked.Seconds()*1e3/n, "lock-ms")
	b.ReportMetric(restore.Seconds()*1e3/n, "restore-ms")
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
