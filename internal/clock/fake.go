package clock

import (
	"sync"
	"time"
)

// Fake is a Clock that moves only when a test calls Advance. Timers,
// tickers and AfterFunc functions due by then fire in time order during
// Advance (AfterFunc functions in their own goroutine, as with the time
// package). It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer // active timers and tickers
}

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// fakeTimer is one timer, ticker or AfterFunc of a Fake clock.
type fakeTimer struct {
	f      *Fake
	when   time.Time
	period time.Duration // a ticker's; 0 for a timer
	ch     chan time.Time
	fn     func()
}

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Since implements Clock.
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// NewTimer implements Clock.
func (f *Fake) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t, t.ch
}

// NewTicker implements Clock. It panics if d is not positive, as
// time.NewTicker does.
func (f *Fake) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	t := &fakeTimer{f: f, ch: make(chan time.Time, 1), period: d}
	t.Reset(d)
	return fakeTicker{t}, t.ch
}

// AfterFunc implements Clock.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing every timer and ticker that
// falls due on the way, in time order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		t := f.nextDue(end)
		if t == nil {
			break
		}
		f.now = t.when
		t.fire(f.now)
		if t.period > 0 {
			t.when = t.when.Add(t.period)
		} else {
			f.remove(t)
		}
	}
	f.now = end
}

// Pending returns how many timers and tickers wait to fire, so that a test
// can wait until the code under test has armed its timer before it calls
// Advance.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// nextDue returns the pending timer due first, if it is due by end.
func (f *Fake) nextDue(end time.Time) *fakeTimer {
	var first *fakeTimer
	for _, t := range f.pending {
		if !t.when.After(end) && (first == nil || t.when.Before(first.when)) {
			first = t
		}
	}
	return first
}

// remove drops t from the pending timers; it reports whether t was there.
func (f *Fake) remove(t *fakeTimer) bool {
	for i, p := range f.pending {
		if p == t {
			f.pending = append(f.pending[:i], f.pending[i+1:]...)
			return true
		}
	}
	return false
}

// fire sends now on the timer's channel, dropping it when the reader has
// not taken the previous one, or starts its function.
func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		go t.fn()
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

// Stop implements Timer and, through fakeTicker, Ticker.
func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.remove(t)
}

// Reset implements Timer. A duration of zero or less fires at the next
// Advance.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	active := t.f.remove(t)
	t.when = t.f.now.Add(d)
	if t.period > 0 {
		t.period = d
	}
	t.f.pending = append(t.f.pending, t)
	return active
}

// fakeTicker is a fakeTimer seen as a Ticker.
type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) Stop()                 { k.t.Stop() }
func (k fakeTicker) Reset(d time.Duration) { k.t.Reset(d) }
