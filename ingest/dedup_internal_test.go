package ingest

import (
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	d := newDedup(2*time.Minute, 3)
	steps := []struct {
		name         string
		subject, id  string
		seq          uint64
		at           time.Duration
		want         bool
		wantIDsAfter int
	}{
		{"first", "vigil.events.a", "x", 1, 0, false, 1},
		{"retry on the same subject", "vigil.events.a", "x", 2, time.Minute, true, 1},
		{"same id, another service", "vigil.events.b", "x", 3, time.Minute, false, 2},
		{"the first again (redelivered)", "vigil.events.a", "x", 1, time.Minute, false, 2},
		{"no id", "vigil.events.a", "", 4, time.Minute, false, 2},
		{"retry at the window's end", "vigil.events.a", "x", 5, 2 * time.Minute, true, 2},
		{"after the window: new, older ids forgotten", "vigil.events.a", "x", 6, 3*time.Minute + time.Second, false, 1},
		{"within the window of the new one", "vigil.events.a", "x", 7, 4 * time.Minute, true, 1},
		{"fills up", "vigil.events.a", "y", 8, 4 * time.Minute, false, 2},
		{"fills up more", "vigil.events.a", "z", 9, 4 * time.Minute, false, 3},
		{"past the cap the oldest is forgotten", "vigil.events.a", "w", 10, 4 * time.Minute, false, 3},
		{"so its retry is not caught", "vigil.events.a", "x", 11, 4 * time.Minute, false, 3},
		{"a newer one still is", "vigil.events.a", "z", 12, 4 * time.Minute, true, 3},
	}
	for _, s := range steps {
		if got := d.duplicate(s.subject, s.id, s.seq, at(s.at)); got != s.want {
			t.Fatalf("%s: duplicate = %v, want %v", s.name, got, s.want)
		}
		if n := d.size(); n != s.wantIDsAfter {
			t.Fatalf("%s: %d ids remembered, want %d", s.name, n, s.wantIDsAfter)
		}
	}
	d.reset()
	if d.size() != 0 || d.duplicate("vigil.events.a", "z", 13, at(4*time.Minute)) {
		t.Fatal("reset kept ids")
	}
}

// TestDedupKeysDoNotRunTogether checks that subject and id are kept apart
// in the key: "a.b" + "c" is not "a" + "b.c".
func TestDedupKeysDoNotRunTogether(t *testing.T) {
	d := newDedup(time.Minute, 10)
	now := time.Now()
	d.duplicate("vigil.events.a", "bc", 1, now)
	if d.duplicate("vigil.events.ab", "c", 2, now) {
		t.Fatal("a different subject and id with the same concatenation counted as a duplicate")
	}
}
