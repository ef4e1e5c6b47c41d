package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func received(ch <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimer(t *testing.T) {
	f := NewFake(t0)
	tm, ch := f.NewTimer(time.Second)
	f.Advance(999 * time.Millisecond)
	if _, ok := received(ch); ok {
		t.Fatal("timer fired before its time")
	}
	f.Advance(time.Millisecond)
	if v, ok := received(ch); !ok || !v.Equal(t0.Add(time.Second)) {
		t.Fatalf("timer: got %v %v, want the time at 1s", v, ok)
	}
	if tm.Stop() {
		t.Error("Stop of a fired timer reported it active")
	}
	if tm.Reset(time.Second) {
		t.Error("Reset of a fired timer reported it active")
	}
	if !tm.Stop() {
		t.Error("Stop of a reset timer reported it inactive")
	}
	f.Advance(time.Hour)
	if _, ok := received(ch); ok {
		t.Fatal("a stopped timer fired")
	}
	if f.Pending() != 0 {
		t.Fatalf("Pending = %d after everything fired or stopped", f.Pending())
	}
}

func TestFakeTickerDropsMissedTicks(t *testing.T) {
	f := NewFake(t0)
	tk, ch := f.NewTicker(time.Second)
	defer tk.Stop()
	f.Advance(3500 * time.Millisecond) // three ticks due; the reader took none
	if v, ok := received(ch); !ok || !v.Equal(t0.Add(time.Second)) {
		t.Fatalf("first tick = %v %v, want the one at 1s (later ones dropped)", v, ok)
	}
	if _, ok := received(ch); ok {
		t.Fatal("more than one tick buffered")
	}
	f.Advance(500 * time.Millisecond)
	if v, ok := received(ch); !ok || !v.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("next tick = %v %v, want 4s", v, ok)
	}
	tk.Reset(10 * time.Second)
	f.Advance(9 * time.Second)
	if _, ok := received(ch); ok {
		t.Fatal("ticker reset to 10s ticked after 9s")
	}
}

func TestFakeAfterFuncInTimeOrder(t *testing.T) {
	f := NewFake(t0)
	got := make(chan string, 2)
	f.AfterFunc(2*time.Second, func() { got <- "second" })
	f.AfterFunc(time.Second, func() { got <- "first" })
	stopped := f.AfterFunc(time.Second, func() { got <- "stopped" })
	stopped.Stop()
	f.Advance(2 * time.Second)
	seen := map[string]bool{<-got: true, <-got: true}
	if !seen["first"] || !seen["second"] {
		t.Fatalf("functions run: %v", seen)
	}
	if !f.Now().Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("Now = %v", f.Now())
	}
	if d := f.Since(t0); d != 2*time.Second {
		t.Fatalf("Since = %v", d)
	}
}

func TestOr(t *testing.T) {
	if _, ok := Or(nil).(Real); !ok {
		t.Fatal("Or(nil) is not Real")
	}
	f := NewFake(t0)
	if Or(f) != Clock(f) {
		t.Fatal("Or(f) is not f")
	}
}
