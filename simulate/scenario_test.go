package simulate

import (
	"bytes"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// short is a scenario small enough for a unit test, with every attack and
// benign pattern.
func short(seed uint64) Options {
	return Options{Seed: seed, Rate: 60, Users: 5000, Duration: 12 * time.Minute, Attacks: Attacks(), Benign: Benigns()}
}

func plan(t testing.TB, o Options) *Scenario {
	t.Helper()
	sc, err := Plan(o)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return sc
}

// observe streams sc and calls fn for each event with its item (nil for
// background), checking that times never go back.
func observe(t testing.TB, sc *Scenario, fn func(it *item, ev *event.Event)) {
	t.Helper()
	s := sc.Stream()
	var ev event.Event
	var last time.Time
	for {
		tag, ok := s.Next(&ev)
		if !ok {
			return
		}
		if ev.Time.Before(last) {
			t.Fatalf("event at %s after one at %s: not in time order", ev.Time, last)
		}
		last = ev.Time
		var it *item
		if tag >= 0 {
			it = sc.items[tag]
		}
		fn(it, &ev)
	}
}

// label returns the value ev has for an alert label.
func label(ev *event.Event, name string) string {
	switch name {
	case "source_ip":
		if ev.SourceIP.IsValid() {
			return ev.SourceIP.String()
		}
	case "source_prefix":
		if ev.SourceIP.IsValid() {
			return prefixOf(ev.SourceIP).String()
		}
	case "user":
		return ev.User
	case "client_id":
		return ev.ClientID
	case "service":
		return ev.Service
	case "endpoint":
		return ev.Endpoint
	}
	return ""
}

func carries(ev *event.Event, key map[string]string) bool {
	for k, v := range key {
		if label(ev, k) != v {
			return false
		}
	}
	return true
}

func digest(t testing.TB, o Options) [32]byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := plan(t, o).WriteEvents(&buf); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(buf.Bytes())
}

func TestScenarioIsDeterministicPerSeed(t *testing.T) {
	o := short(1)
	o.Duration = 4 * time.Minute
	a, b := digest(t, o), digest(t, o)
	o.Seed = 2
	c := digest(t, o)
	if a != b {
		t.Fatal("the same seed produced different events")
	}
	if a == c {
		t.Fatal("different seeds produced the same events")
	}
	sc := plan(t, o)
	if s1, s2 := sc.Stream(), sc.Stream(); !sameStreams(s1, s2) {
		t.Fatal("two streams of one scenario differ")
	}
}

func sameStreams(a, b *Stream) bool {
	var ea, eb event.Event
	for {
		ta, oka := a.Next(&ea)
		tb, okb := b.Next(&eb)
		if oka != okb || ta != tb || string(ea.AppendJSON(nil)) != string(eb.AppendJSON(nil)) {
			return false
		}
		if !oka {
			return true
		}
	}
}

// TestEveryEventIsValid decodes every event of scenarios with Vigil's own
// validator.
func TestEveryEventIsValid(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		var buf bytes.Buffer
		c, err := plan(t, short(seed)).WriteEvents(&buf)
		if err != nil {
			t.Fatal(err)
		}
		dec := event.NewDecoder(event.DefaultLimits())
		valid, rejected := dec.DecodeMessage(buf.Bytes(), "", time.Time{}, func(*event.Event) {}, func(err *event.RejectError, line []byte) {
			t.Errorf("seed %d: event rejected: %v: %s", seed, err, line)
		})
		if valid != c.Events || rejected != 0 || valid < 10_000 {
			t.Fatalf("seed %d: %d valid, %d rejected of %d written", seed, valid, rejected, c.Events)
		}
	}
}

// TestAttackEventsCarryTheirKeyInTheirWindow checks the truth against the
// events: every attack and pattern produces events, each carries the
// item's key and falls within its [start, end].
func TestAttackEventsCarryTheirKeyInTheirWindow(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		sc := plan(t, short(seed))
		seen := map[*item]int{}
		observe(t, sc, func(it *item, ev *event.Event) {
			if it == nil {
				return
			}
			seen[it]++
			at := ev.Time.Sub(sc.opts.Start)
			if at < it.start.Truncate(time.Millisecond) || at > it.end {
				t.Errorf("seed %d: %s event at %s outside [%s, %s]", seed, it.id, at, it.start, it.end)
			}
			if !anyKey(ev, it.keys) {
				t.Errorf("seed %d: %s event lacks its key %v: %s", seed, it.id, it.keys[0], ev.AppendJSON(nil))
			}
		})
		for _, it := range sc.items {
			if seen[it] == 0 {
				t.Errorf("seed %d: %s produced no events", seed, it.id)
			}
		}
	}
}

// anyKey reports whether ev carries one of keys (a carrier NAT's pool has
// a key per address, a typo user one for the user and one for the address).
func anyKey(ev *event.Event, keys []map[string]string) bool {
	for _, k := range keys {
		if carries(ev, k) {
			return true
		}
	}
	return false
}

// TestKeysDoNotLeak checks that no other traffic carries an attack's key
// (except the takeover victim's own sessions) and that no attack carries
// a benign pattern's address, prefix, user or client key; items keyed by
// a service never overlap on the same service.
func TestKeysDoNotLeak(t *testing.T) {
	labels := []string{"source_ip", "source_prefix", "user", "client_id"}
	for _, seed := range []uint64{5, 6} {
		sc := plan(t, short(seed))
		owner := map[[2]string]*item{}
		for _, it := range sc.items {
			for _, k := range it.keys {
				for l, v := range k {
					if l != "service" && l != "endpoint" {
						owner[[2]string{l, v}] = it
					}
				}
			}
		}
		observe(t, sc, func(it *item, ev *event.Event) {
			for _, l := range labels {
				o := owner[[2]string{l, label(ev, l)}]
				background := it == nil || it.effects != nil // effects tag the background events they change
				if o == nil || o == it || (background && o.name == string(Takeover)) {
					continue
				}
				if o.attack || (it != nil && it.attack) {
					t.Errorf("seed %d: event of %s carries %s=%s, a key of %s: %s", seed, itemID(it), l, label(ev, l), o.id, ev.AppendJSON(nil))
				}
			}
		})
		for _, a := range sc.items {
			for _, b := range sc.items {
				if a != b && a.service != nil && a.service == b.service && a.start < b.end && b.start < a.end {
					t.Errorf("seed %d: %s and %s overlap on service %s", seed, a.id, b.id, a.service.name)
				}
			}
		}
	}
}

func itemID(it *item) string {
	if it == nil {
		return "background"
	}
	return it.id
}
