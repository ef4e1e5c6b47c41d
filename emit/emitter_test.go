package emit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func testEvent(i int) event.Event {
	return event.Event{
		Time:      time.Now().Add(-time.Second),
		RequestID: fmt.Sprintf("req-%06d", i),
		Method:    "POST",
		Endpoint:  "/v1/auth/login",
		Status:    401,
		User:      fmt.Sprintf("user%d", i%7),
	}
}

func TestEmitterPublishesBatches(t *testing.T) {
	tests := []struct {
		name     string
		events   int
		opts     []Option
		maxLines int // most events one message may hold
	}{
		{"one event per message", 50, []Option{WithMaxBatch(1)}, 1},
		{"batches of 10", 500, []Option{WithMaxBatch(10), WithLinger(50 * time.Millisecond)}, 10},
		{"no linger", 2000, []Option{WithLinger(0)}, DefaultMaxBatch},
		{"byte cap splits batches", 300, []Option{WithMaxBatchBytes(2000), WithLinger(20 * time.Millisecond)}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t)
			e := newEmitter(t, ns.connect(), tt.opts...)
			for i := range tt.events {
				if !e.Emit(testEvent(i)) {
					t.Fatalf("Emit %d dropped the event", i)
				}
			}
			if err := e.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			msgs := ns.readStream()
			evs := decodeAll(t, msgs, time.Now())
			if len(evs) != tt.events {
				t.Fatalf("stream holds %d events, want %d", len(evs), tt.events)
			}
			seen := map[string]bool{}
			for _, m := range msgs {
				checkMessage(t, m, tt.maxLines)
			}
			for _, ev := range evs {
				if seen[ev.RequestID] {
					t.Errorf("event %s stored twice", ev.RequestID)
				}
				seen[ev.RequestID] = true
			}
			st := e.Stats()
			if st.Published != uint64(tt.events) || st.Dropped != 0 || st.Messages != uint64(len(msgs)) {
				t.Errorf("stats = %+v, want %d published in %d messages, none dropped", st, tt.events, len(msgs))
			}
		})
	}
}

// checkMessage checks a stored message's subject, size and Nats-Msg-Id.
func checkMessage(t *testing.T, m storedMsg, maxLines int) {
	t.Helper()
	if m.subject != "vigil.events.api" {
		t.Errorf("subject %q, want vigil.events.api", m.subject)
	}
	if len(m.lines) > maxLines {
		t.Errorf("message holds %d events, want at most %d", len(m.lines), maxLines)
	}
	ids := make([]string, len(m.lines))
	for i, line := range m.lines {
		_, rest, _ := strings.Cut(string(line), `"request_id":"`)
		ids[i], _, _ = strings.Cut(rest, `"`)
	}
	if want := BatchID(ids...); m.msgID != want {
		t.Errorf("Nats-Msg-Id %q, want %q", m.msgID, want)
	}
}

func TestBatchID(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		want string
	}{
		{"one event is its request id", []string{"req-1"}, "req-1"},
		// printf 'a\nb\n' | sha256sum | cut -c1-32
		{"two events", []string{"a", "b"}, "vigil-batch-911169ddaaf146aff539f58c26c489af"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BatchID(tt.ids...); got != tt.want {
				t.Errorf("BatchID(%q) = %q, want %q", tt.ids, got, tt.want)
			}
		})
	}
	if BatchID("a", "b") == BatchID("b", "a") || BatchID("ab", "c") == BatchID("a", "bc") {
		t.Error("different id lists share a batch id")
	}
}

// TestFullBatchDoesNotWaitForLinger: while a batch lingers, the publisher
// is not woken per event, but as soon as the buffer holds the rest of a full
// batch the batch is sent.
func TestFullBatchDoesNotWaitForLinger(t *testing.T) {
	ns := startNATS(t)
	e := newEmitter(t, ns.connect(), WithMaxBatch(10), WithLinger(time.Hour))
	e.Emit(testEvent(0))
	testkit.WaitUntil(t, 10*time.Second, "first event taken into a lingering batch", func() bool {
		return e.Stats().Buffered == 0
	})
	for i := 1; i < 25; i++ {
		e.Emit(testEvent(i))
	}
	testkit.WaitUntil(t, 10*time.Second, "two full batches published", func() bool { return e.Stats().Published == 20 })
	if st := e.Stats(); st.Messages != 2 || st.Pending() != 5 {
		t.Errorf("stats %+v, want 2 messages published and 5 events lingering", st)
	}
}

// TestDuplicatesStoredOnce proves that messages carry Nats-Msg-Id: events
// emitted twice with the same request ids are acknowledged as duplicates.
func TestDuplicatesStoredOnce(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
	}{
		{"single events", 1},
		{"batches", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t)
			e := newEmitter(t, ns.connect(), WithMaxBatch(tt.maxBatch), WithLinger(time.Minute))
			for round := range 2 {
				for i := range 20 {
					e.Emit(testEvent(i))
				}
				testkit.WaitUntil(t, 10*time.Second, "round published", func() bool {
					return e.Stats().Published == uint64(20*(round+1))
				})
			}
			if got := len(decodeAll(t, ns.readStream(), time.Now())); got != 20 {
				t.Errorf("stream holds %d events, want 20", got)
			}
		})
	}
}

// TestEmitNeverBlocks fills the buffer while NATS is down, so the publisher
// cannot make progress, and checks that Emit keeps returning at once,
// counting every event it could not keep.
func TestEmitNeverBlocks(t *testing.T) {
	ns := startNATS(t)
	nc := ns.connect()
	e := newEmitter(t, nc, WithBufferSize(100))
	ns.stop()
	testkit.WaitUntil(t, 10*time.Second, "client to see the server gone", func() bool { return !nc.IsConnected() })

	done := make(chan int)
	go func() {
		accepted := 0
		for i := range 10_000 {
			if e.Emit(testEvent(i)) {
				accepted++
			}
		}
		done <- accepted
	}()
	var accepted int
	select {
	case accepted = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Emit blocked while NATS was down")
	}
	st := e.Stats()
	if accepted != 100 || st.DroppedBy[DropBufferFull] != 10_000-100 || st.Buffered != 100 {
		t.Errorf("accepted %d, stats %+v; want 100 accepted and buffered, 9900 dropped buffer_full", accepted, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := e.Close(ctx); err == nil {
		t.Error("Close with NATS down reported no loss")
	}
	if st := e.Stats(); st.Emitted != st.Published+st.Dropped || st.Published != 0 {
		t.Errorf("after Close: %+v, want every event dropped", st)
	}
}

// TestRetriesUntilStreamExists publishes while Vigil has not created its
// stream yet: every attempt fails, the messages are kept and sent again,
// and once the stream exists each event is stored exactly once.
func TestRetriesUntilStreamExists(t *testing.T) {
	ns := startNATSWithoutStream(t)
	e := newEmitter(t, ns.connect(), WithMaxBatch(5), WithRetryBackoff(10*time.Millisecond, 50*time.Millisecond))
	for i := range 20 {
		e.Emit(testEvent(i))
	}
	testkit.WaitUntil(t, 10*time.Second, "failed attempts", func() bool { return e.Stats().PublishErrors >= 4 })
	if st := e.Stats(); st.Published != 0 || st.Dropped != 0 || st.Pending() != 20 {
		t.Fatalf("before the stream exists: %+v, want all 20 pending", st)
	}
	ns.createStream()
	testkit.WaitUntil(t, 20*time.Second, "events published", func() bool { return e.Stats().Published == 20 })
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(decodeAll(t, ns.readStream(), time.Now())); got != 20 {
		t.Errorf("stream holds %d events, want 20", got)
	}
}

// TestRetriesWhenStreamIngestIsFull publishes faster than a server whose
// streams queue at most one message for storing: it refuses the rest with
// 429 Too Many Requests, and the Emitter must send them again rather than
// drop them.
func TestRetriesWhenStreamIngestIsFull(t *testing.T) {
	ns := &natsServer{t: t, dir: t.TempDir(), port: server.RANDOM_PORT, ingestQueue: 1}
	ns.start()
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.stop)
	ns.createStream()
	e := newEmitter(t, ns.connect(), WithMaxBatch(1), WithRetryBackoff(time.Millisecond, 10*time.Millisecond))
	const n = 2000
	for i := range n {
		if !e.Emit(testEvent(i)) {
			t.Fatalf("Emit %d dropped the event", i)
		}
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := e.Stats()
	if st.Published != n || st.Dropped != 0 {
		t.Errorf("stats = %+v, want %d published, none dropped", st, n)
	}
	if st.PublishErrors == 0 {
		t.Error("the server never refused a publish: the test did not exercise the retry")
	}
	if got := len(decodeAll(t, ns.readStream(), time.Now())); got != n {
		t.Errorf("stream holds %d events, want %d", got, n)
	}
}

func TestClose(t *testing.T) {
	t.Run("flushes what is buffered", func(t *testing.T) {
		ns := startNATS(t)
		e := newEmitter(t, ns.connect(), WithLinger(time.Hour))
		for i := range 250 {
			e.Emit(testEvent(i))
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if st := e.Stats(); st.Published != 250 || st.Pending() != 0 {
			t.Errorf("after Close: %+v, want 250 published", st)
		}
		if e.Emit(testEvent(1000)) {
			t.Error("Emit after Close accepted the event")
		}
		if st := e.Stats(); st.DroppedBy[DropClosed] != 1 {
			t.Errorf("Emit after Close: dropped %v, want 1 closed", st.DroppedBy)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("gives up at the deadline when NATS is down", func(t *testing.T) {
		ns := startNATS(t)
		nc := ns.connect()
		e := newEmitter(t, nc)
		ns.stop()
		testkit.WaitUntil(t, 10*time.Second, "client to see the server gone", func() bool { return !nc.IsConnected() })
		for i := range 30 {
			e.Emit(testEvent(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := e.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "30 events") {
			t.Errorf("Close = %v, want 30 events lost to the deadline", err)
		}
		if st := e.Stats(); st.DroppedBy[DropClosed] != 30 || st.Pending() != 0 {
			t.Errorf("stats %+v, want 30 dropped closed", st)
		}
	})
}

// TestCloseLeavesNoGoroutines checks that Close ends every goroutine the
// Emitter started, JetStream's ack machinery included.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	ns := startNATS(t)
	nc := ns.connect()
	before := runtime.NumGoroutine()
	e, err := New(nc, WithService("api"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		e.Emit(testEvent(i))
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitUntil(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestEmitDropsInvalid(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*event.Event)
		reason DropReason
	}{
		{"bad service", func(ev *event.Event) { ev.Service = "Bad Service" }, DropInvalid},
		{"service with subject wildcard", func(ev *event.Event) { ev.Service = "api.>" }, DropInvalid},
		{"no status", func(ev *event.Event) { ev.Status = 0 }, DropInvalid},
		{"too large", func(ev *event.Event) {
			ev.Attrs = map[string]string{}
			for i := range 32 {
				ev.Attrs[fmt.Sprintf("k%02d", i)] = strings.Repeat("\x01", 256)
			}
		}, DropTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t)
			e := newEmitter(t, ns.connect(), WithMaxEventBytes(4096))
			ev := testEvent(1)
			tt.mutate(&ev)
			e.Emit(ev)
			e.Emit(testEvent(2))
			if err := e.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := e.Stats()
			if st.DroppedBy[tt.reason] != 1 || st.Published != 1 {
				t.Errorf("stats %+v, want 1 dropped %s and 1 published", st, tt.reason)
			}
		})
	}
}
