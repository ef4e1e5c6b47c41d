package notify

import "time"

// flood tracks a receiver's recent arrivals to decide when alerts go out one
// by one and when they are rolled into a digest. It keeps only the last
// limit+1 arrival times, so its size is fixed.
type flood struct {
	limit    int
	window   time.Duration
	arrivals []time.Time
}

func newFlood(limit int, window time.Duration) *flood {
	return &flood{limit: limit, window: window, arrivals: make([]time.Time, 0, limit+1)}
}

// arrive records a delivery taken from the queue at now.
func (f *flood) arrive(now time.Time) {
	if len(f.arrivals) == f.limit+1 {
		copy(f.arrivals, f.arrivals[1:])
		f.arrivals = f.arrivals[:f.limit]
	}
	f.arrivals = append(f.arrivals, now)
}

// over reports whether more than limit deliveries arrived within the window
// ending at now.
func (f *flood) over(now time.Time) bool {
	cut := now.Add(-f.window)
	i := 0
	for i < len(f.arrivals) && !f.arrivals[i].After(cut) {
		i++
	}
	f.arrivals = append(f.arrivals[:0], f.arrivals[i:]...)
	return len(f.arrivals) > f.limit
}

// digestDue returns when a digest that starts being held at now goes out:
// when the current window has passed, and at least a window after the last
// digest, so a sustained flood yields one digest per window.
func (f *flood) digestDue(now, lastDigest time.Time) time.Time {
	due := now.Add(f.window)
	if len(f.arrivals) > 0 {
		due = f.arrivals[0].Add(f.window)
	}
	if !lastDigest.IsZero() && lastDigest.Add(f.window).After(due) {
		due = lastDigest.Add(f.window)
	}
	return due
}
