package ingest

import (
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	p := progress{grace: 5 * time.Second}
	p.reset(t0)
	if p.caughtUp() {
		t.Fatal("caught up as a session starts, before the server said anything")
	}
	p.serverIdle(t0.Add(time.Second))
	if p.caughtUp() {
		t.Error("caught up within the grace after connecting: publishers may still be reconnecting")
	}
	p.serverIdle(t0.Add(5 * time.Second))
	if !p.caughtUp() {
		t.Fatal("not caught up once the server reported nothing left after the grace")
	}

	p.receive(t0.Add(5 * time.Second))
	if p.caughtUp() {
		t.Error("caught up with a message received and not applied")
	}
	p.apply(1)
	if p.caughtUp() {
		t.Error("caught up before the server confirmed nothing else waits")
	}
	p.receive(t0.Add(6 * time.Second))
	p.serverIdle(t0.Add(6 * time.Second)) // a stale report: a message is not applied yet
	p.apply(1)
	if p.caughtUp() {
		t.Error("caught up on a report older than the last message")
	}
	p.serverIdle(t0.Add(7 * time.Second))
	if !p.caughtUp() {
		t.Error("not caught up once the server reported nothing left")
	}

	// The connection drops: messages may wait on the server or in
	// publishers, whatever was reported before.
	p.interrupt(t0.Add(8 * time.Second))
	if p.caughtUp() {
		t.Error("caught up after the connection was lost")
	}
	p.serverIdle(t0.Add(9 * time.Second))
	if p.caughtUp() {
		t.Error("caught up within the grace after reconnecting")
	}
	p.serverIdle(t0.Add(13 * time.Second))
	if !p.caughtUp() {
		t.Error("not caught up after the grace")
	}
}

// TestStalled: delivery counts as stalled only when the server holds
// messages, none awaits acknowledgement, the pipeline is idle, and nothing
// came for stallAfter.
func TestStalled(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var p progress
	p.reset(t0)
	quiet := t0.Add(stallAfter)
	if p.stalled(quiet.Add(-time.Second), 5, 0) {
		t.Error("stalled before stallAfter passed")
	}
	if p.stalled(quiet, 0, 0) {
		t.Error("stalled with nothing pending")
	}
	if p.stalled(quiet, 5, 3) {
		t.Error("stalled while messages await acknowledgement (max_ack_pending may hold delivery back)")
	}
	if !p.stalled(quiet, 5, 0) {
		t.Error("not stalled: messages pending, none delivered for stallAfter")
	}
	p.receive(quiet)
	if p.stalled(quiet.Add(stallAfter), 5, 0) {
		t.Error("stalled while a received message is being applied (a busy engine)")
	}
	p.apply(1)
	if p.stalled(quiet.Add(stallAfter-time.Second), 5, 0) {
		t.Error("stalled within stallAfter of the last message")
	}
	if !p.stalled(quiet.Add(stallAfter), 5, 0) {
		t.Error("not stalled stallAfter after the last message")
	}
}
