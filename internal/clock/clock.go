// Package clock is how the daemon and ingest read the time and schedule
// work: Now and Since, timers, tickers and AfterFunc behind one small
// interface (modelled on tailscale's tstime.Clock), so that tests drive
// time-dependent behaviour with Fake instead of sleeping. Real is the wall
// clock; a nil Clock passed through Or is Real too.
package clock

import "time"

// Clock tells the time and schedules work on it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Since returns the time elapsed since t.
	Since(t time.Time) time.Duration
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed, as time.NewTimer does.
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
	// NewTicker returns a ticker that sends the time on its channel every
	// d, dropping ticks a slow reader misses, as time.NewTicker does.
	NewTicker(d time.Duration) (Ticker, <-chan time.Time)
	// AfterFunc calls f in its own goroutine once d has passed, as
	// time.AfterFunc does.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer controls a timer of NewTimer or AfterFunc.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
	// Reset makes the timer fire after d; it reports whether the timer
	// had been active.
	Reset(d time.Duration) bool
}

// Ticker controls a ticker of NewTicker.
type Ticker interface {
	// Stop ends the ticks.
	Stop()
	// Reset makes the ticker tick every d from now on.
	Reset(d time.Duration)
}

// Real is the wall clock: the time package.
type Real struct{}

// Or returns c, or Real when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// Since implements Clock.
func (Real) Since(t time.Time) time.Duration { return time.Since(t) }

// NewTimer implements Clock.
func (Real) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// NewTicker implements Clock.
func (Real) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	t := time.NewTicker(d)
	return t, t.C
}

// AfterFunc implements Clock.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
