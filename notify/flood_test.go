package notify

import (
	"testing"
	"time"
)

func TestFlood(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := newFlood(3, time.Minute)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		sec  int
		over bool
	}{
		{0, false}, {10, false}, {20, false}, // three within the limit
		{30, true},  // the fourth in a minute
		{61, true},  // 10, 20, 30, 61: still four in the window
		{85, false}, // 30, 61, 85
	}
	for i, s := range steps {
		f.arrive(at(s.sec))
		if got := f.over(at(s.sec)); got != s.over {
			t.Errorf("step %d (t=%ds): over = %v, want %v", i, s.sec, got, s.over)
		}
		if len(f.arrivals) > f.limit+1 {
			t.Fatalf("keeps %d arrivals, want at most %d", len(f.arrivals), f.limit+1)
		}
	}
	// A digest held from now goes out when the oldest arrival in the window
	// leaves it, and not sooner than a window after the last digest.
	g := newFlood(2, time.Minute)
	for _, s := range []int{0, 5, 10} {
		g.arrive(at(s))
	}
	g.over(at(10))
	if due := g.digestDue(at(10), time.Time{}); !due.Equal(at(60)) {
		t.Errorf("digest due %s, want %s", due, at(60))
	}
	if due := g.digestDue(at(10), at(30)); !due.Equal(at(90)) {
		t.Errorf("digest due %s after a digest at 30s, want %s", due, at(90))
	}
}
