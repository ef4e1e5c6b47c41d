package detect_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/simulate"
)

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
