package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/simulate"
)

// Throughput is measured by draining a backlog: the stream is filled first,
// then a consumer is created and consumes it. The time is the server's own
// record: from the consumer's creation to its last acknowledgement, so
// neither process start-up nor polling granularity counts.

// drainLateness is detect.lateness for drain runs: a backlog is older than
// the default lateness by the time it is consumed, and the live engine
// would drop it as late (see docs/performance.md).
const drainLateness = 10 * time.Minute

// ensureStreams declares Vigil's streams with the default settings, as the
// daemon would, so that a backlog can be published before it starts.
func (c *client) ensureStreams(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ingest.EnsureStreams(ctx, c.js, ingest.DefaultConfig(), 1); err != nil {
		t.Fatal(err)
	}
}

// prefill publishes n messages built by next as fast as JetStream stores
// them and fails t unless every one was acknowledged. At most prefillAhead
// are unacknowledged at a time: nats-server refuses publishes (429) once a
// stream holds 100,000 messages or 128 MiB waiting to be stored, and 2048
// of the largest messages the benchmarks send (25 KB) stay well under that.
func (c *client) prefill(t testing.TB, n int, next func(i int) *nats.Msg) time.Duration {
	t.Helper()
	var failed atomic.Int64
	js, err := jetstream.New(c.nc, jetstream.WithPublishAsyncMaxPending(prefillAhead),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		if _, err := js.PublishMsgAsync(next(i), jetstream.WithStallWait(30*time.Second)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		t.Fatalf("%d publishes not acknowledged", js.PublishAsyncPending())
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d publishes failed", f, n)
	}
	return time.Since(start)
}

const prefillAhead = 2048

// drained waits until the durable consumer name has acknowledged every
// message of the events stream and returns the server-measured time from
// the consumer's creation to its last acknowledgement.
func (c *client) drained(t testing.TB, name string, timeout time.Duration) time.Duration {
	t.Helper()
	ci := c.allAckedBy(t, name, timeout)
	return ci.AckFloor.Last.Sub(ci.Created)
}

// allAckedBy waits until the durable consumer name has acknowledged every
// message of the events stream, all of which must have been published
// already, and returns its state then; AckFloor.Last is the server's time
// of the last acknowledgement.
func (c *client) allAckedBy(t testing.TB, name string, timeout time.Duration) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		ci, err := c.consumerInfo(ctx, name)
		if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Last != nil {
			return ci
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer %s did not drain the stream within %s: %+v %v", name, timeout, ci, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *client) consumerInfo(ctx context.Context, name string) (*jetstream.ConsumerInfo, error) {
	cons, err := c.js.Consumer(ctx, ingest.EventsStream, name)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// normalMsgs returns a message builder of ordinary simulated traffic,
// perMsg events per message (NDJSON when more than one), stamped now.
func normalMsgs(perMsg int) func(i int) *nats.Msg {
	gen := simulate.NewGenerator(uint64(time.Now().UnixNano()), nil)
	var ev event.Event
	ids := make([]string, 0, perMsg)
	return func(int) *nats.Msg {
		var data []byte
		ids = ids[:0]
		now := time.Now()
		for j := range perMsg {
			gen.Normal(now, &ev)
			ev.Service = "billing" // one subject per message
			if j > 0 {
				data = append(data, '\n')
			}
			data = ev.AppendJSON(data)
			ids = append(ids, ev.RequestID)
		}
		m := nats.NewMsg(ingest.SubjectPrefix + ev.Service)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, emit.BatchID(ids...))
		return m
	}
}

// malformed returns the i-th of a cycle of invalid single-event messages,
// one per kind of mistake a publisher (or an attacker) can make.
func malformed(i int) *nats.Msg {
	ev := event.Event{Time: time.Now(), Service: "billing", RequestID: fmt.Sprintf("bad-%d", i),
		Method: "GET", Endpoint: "/v1/invoices", Status: 200}
	good := string(ev.AppendJSON(nil))
	open := good[:len(good)-1] // without the closing brace
	future := ev
	future.Time = time.Now().Add(time.Hour)
	variants := []string{
		`{"ts":`,                                                     // malformed JSON
		`{"service":"billing","request_id":"x"}`,                     // missing fields
		open + `,"surprise":1}`,                                      // unknown field
		open + `,"status":200}`,                                      // duplicate field
		string(future.AppendJSON(nil)),                               // future timestamp
		open + `,"user":"` + "\xff" + `"}`,                           // invalid UTF-8
		strings.Replace(good, `"billing"`, `"orders"`, 1),            // service mismatch
		open + `,"user_agent":"` + strings.Repeat("a", 20000) + `"}`, // too large
	}
	m := nats.NewMsg(ingest.SubjectPrefix + "billing")
	m.Data = []byte(variants[i%len(variants)])
	m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("bad-%d", i))
	return m
}
