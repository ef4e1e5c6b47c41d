package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/simulate"
)

// client is a test-side NATS connection with JetStream.
type client struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connect(t testing.TB, url string) *client {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &client{nc: nc, js: js}
}

// loginFailure fills ev with a failed login from ip at ts. seq makes the
// request id unique within a test.
func loginFailure(ev *event.Event, ip string, seq int, ts time.Time) {
	ev.Reset()
	ev.Time = ts
	ev.Service = "auth"
	ev.RequestID = fmt.Sprintf("e2e-%s-%d", ip, seq)
	ev.Method = "POST"
	ev.Endpoint = "/v1/auth/login"
	ev.Path = "/v1/auth/login"
	ev.Status = 401
	ev.LatencyMS, ev.HasLatency = 80, true
	ev.SourceIP = netip.MustParseAddr(ip)
	ev.UserAgent = "python-requests/2.32.3"
}

// publishAttack publishes failed logins from ip numbered from..to-1, one
// event per message, stamped now, and waits until JetStream stored them.
func (c *client) publishAttack(t testing.TB, ip string, from, to int) {
	t.Helper()
	var ev event.Event
	var futures []jetstream.PubAckFuture
	for i := from; i < to; i++ {
		loginFailure(&ev, ip, i, time.Now())
		f, err := c.js.PublishMsgAsync(eventMsg(&ev))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		futures = append(futures, f)
	}
	c.waitAcks(t, futures)
}

// eventMsg is the message carrying one event, with its Nats-Msg-Id.
func eventMsg(ev *event.Event) *nats.Msg {
	m := nats.NewMsg(ingest.SubjectPrefix + ev.Service)
	m.Data = ev.AppendJSON(nil)
	m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
	return m
}

func (c *client) waitAcks(t testing.TB, futures []jetstream.PubAckFuture) {
	t.Helper()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish not acknowledged: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("publish not acknowledged within 30s")
		}
	}
}

// streamInfo returns the state of the events stream and Vigil's consumer.
func (c *client) streamInfo(t testing.TB) (*jetstream.StreamInfo, *jetstream.ConsumerInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, ingest.EventsStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	cons, err := s.Consumer(ctx, ingest.DefaultConfig().Consumer)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return si, ci
}

// traffic emits simulated ordinary requests through an emit.Emitter at a
// steady rate until stopped. The Emitter batches them into NDJSON messages
// and retries through NATS outages; its Stats say what JetStream accepted.
type traffic struct {
	em     *emit.Emitter
	ips    int        // distinct source addresses to cycle through; 0: the generator's
	mu     sync.Mutex // held while a tick's events are emitted; see pause
	paused bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startTraffic emits rate events per second from a simulate.Generator.
func startTraffic(t testing.TB, url string, rate int, opts ...emit.Option) *traffic {
	t.Helper()
	return startTrafficIPs(t, url, rate, 0, opts...)
}

// startTrafficIPs is startTraffic with the source addresses cycling
// through ips distinct ones (10.0.0.0/8).
func startTrafficIPs(t testing.TB, url string, rate, ips int, opts ...emit.Option) *traffic {
	t.Helper()
	opts = append([]emit.Option{emit.WithBufferSize(1 << 20), emit.WithAckTimeout(2 * time.Second),
		emit.WithRetryBackoff(50*time.Millisecond, 500*time.Millisecond)}, opts...)
	em, err := emit.Connect(url, opts...)
	if err != nil {
		t.Fatalf("emitter: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{em: em, ips: ips, cancel: cancel}
	tr.wg.Go(func() { tr.generate(ctx, rate) })
	t.Cleanup(func() { tr.stop(t) })
	return tr
}

// pause stops generating events until resume: once it returns, no event is
// emitted; the Emitter keeps publishing what it holds.
func (tr *traffic) pause() { tr.setPaused(true) }

func (tr *traffic) resume() { tr.setPaused(false) }

func (tr *traffic) setPaused(p bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.paused = p
}

// generate emits rate events per second, in 10ms steps, until ctx is done.
func (tr *traffic) generate(ctx context.Context, rate int) {
	gen := simulate.NewGenerator(uint64(time.Now().UnixNano()), nil)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start, sent, n := time.Now(), 0, 0
	var ev event.Event
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			tr.mu.Lock()
			if tr.paused {
				tr.mu.Unlock()
				start, sent = now, 0
				continue
			}
			due := int(now.Sub(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				gen.Normal(now, &ev)
				if tr.ips > 0 {
					n++
					i := n % tr.ips
					ev.SourceIP = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				}
				tr.em.Emit(ev)
			}
			tr.mu.Unlock()
		}
	}
}

// stop ends generation and closes the Emitter, waiting up to a minute for
// JetStream to acknowledge what it holds. It returns the final counts.
func (tr *traffic) stop(t testing.TB) emit.Stats {
	t.Helper()
	tr.cancel()
	tr.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tr.em.Close(ctx); err != nil {
		t.Errorf("emitter close: %v", err)
	}
	return tr.em.Stats()
}

// allAcked reports an error until Vigil's consumer has acknowledged every
// message in the events stream.
func (c *client) allAcked(t testing.TB) error {
	si, ci := c.streamInfo(t)
	if ci.AckFloor.Stream != si.State.LastSeq {
		return fmt.Errorf("ack floor %d, last message %d", ci.AckFloor.Stream, si.State.LastSeq)
	}
	return nil
}

// storedEvents counts the events (NDJSON lines) of every message in the
// events stream.
func (c *client) storedEvents(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := c.js.Stream(ctx, ingest.EventsStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	oc, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	events := 0
	for seen := uint64(0); seen < info.State.Msgs; {
		batch, err := oc.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			events += bytes.Count(m.Data(), []byte("\n")) + 1
			n++
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages: %v", seen, info.State.Msgs, batch.Error())
		}
		seen += uint64(n)
	}
	return events
}
