package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// A member taking over on a backlog catches up with what the member before
// it was delivered while its own first live messages come, both on one
// connection, and nats-server closes a connection as a slow consumer when
// more than its max_pending waits to be written to it: what a member asks
// for must stay under that however slowly it reads. Here max_pending is
// 8 MiB (64 MiB by default), the member's bounds are scaled down alike (2
// MiB per live pull, 1 MiB per fetch of a replay: 5 MiB at most), and its
// connection stops reading at the start of the answer to each of its pulls
// (the live one and every fetch of the catch-up) until the server has sent
// all it was asked for. The member must stay connected and apply every
// event once.
func TestTakeoverOnABacklogStaysUnderMaxPending(t *testing.T) {
	s := testkit.RunNATS(t, func(o *server.Options) {
		o.MaxPending = 8 << 20
		o.MaxPayload = 256 << 10
	})
	cfg := testConfig()
	fo := &ingest.Failover{After: 5 * time.Second, PullExpiry: time.Second, Demote: func() {}}
	_, js := testkit.Connect(t, s)
	ensureStreams(t, js, cfg)
	stream, err := js.Stream(t.Context(), ingest.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(t.Context(), ingest.EventsStream, ingest.ConsumerConfig(cfg, fo)); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	sizes := make([]int, 1200)
	for i := range sizes {
		sizes[i] = 128
	}
	msgs := messages("b", sizes...) // about 22 KB each, 26 MB in all
	publish(t, js, msgs)
	pulledAndDied(t, s, cfg, 600)

	dialer := newStallingDialer()
	nc, err := nats.Connect(s.ClientURL(), nats.SetCustomDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rec := &recorder{}
	var member *ingest.Consumer
	promoted := make(chan struct{})
	var once sync.Once
	fo.Promote = func(ctx context.Context) error {
		defer once.Do(func() { close(promoted) })
		r, err := member.CatchUp(ctx, ingest.Replayed{Since: since}, rec)
		if err == nil {
			member.TakeReplayed(r)
		}
		return err
	}
	member, err = ingest.New(cfg, nc, ingest.Options{Sink: rec, Failover: fo})
	if err != nil {
		t.Fatal(err)
	}
	member.SetPullBytes(2<<20, 1<<20)
	run(t, member)
	testkit.WaitFor(t, waitTime, "the member to wait for the pin", allAnswered(stream, 1))
	if err := stream.UnpinConsumer(t.Context(), cfg.Consumer, ingest.PriorityGroup); err != nil {
		t.Fatal(err)
	}

	for pull := 1; !closed(promoted); pull++ {
		select {
		case <-dialer.stalled:
			testkit.WaitFor(t, waitTime, "the server to send all the member asked for", allAnswered(stream, 0))
			if n := s.NumSlowConsumersClients(); n > 0 {
				t.Fatalf("nats-server closed the member's connection as a slow consumer (more than max_pending waiting for it) in the answer to its pull %d", pull)
			}
			dialer.release <- struct{}{}
		case <-promoted:
		}
	}
	dialer.disarm()

	testkit.WaitFor(t, waitTime, "every message settled", settled(member))
	sameLines(t, "events applied", rec.Lines(), lines(msgs))
	if n := s.NumSlowConsumersClients(); n > 0 {
		t.Errorf("nats-server closed %d connections as slow consumers, want none", n)
	}
	if n := nc.Stats().Reconnects; n > 0 {
		t.Errorf("the member reconnected %d times, want none", n)
	}
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pulledAndDied is the member that was active before: pinned on the
// events consumer, it is delivered n messages (a few at a time, well under
// max_pending) and never acknowledges them, as if it died.
func pulledAndDied(t *testing.T, s *server.Server, cfg ingest.Config, n int) {
	t.Helper()
	_, js := testkit.Connect(t, s)
	cons, err := js.Consumer(t.Context(), ingest.EventsStream, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; {
		batch, err := cons.Fetch(min(10, n-got), jetstream.FetchPriorityGroup(ingest.PriorityGroup), jetstream.FetchMaxWait(waitTime))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
			got++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("the member before was delivered %d messages, want %d: %v", got, n, err)
		}
	}
}

// allAnswered reports nil once the events stream's consumers hold want pull
// requests unanswered in all (0: the server has sent everything asked for,
// or closed the connection that asked), or when the server closed a
// connection as a slow consumer.
func allAnswered(stream jetstream.Stream, want int) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		waiting := 0
		list := stream.ListConsumers(ctx)
		for ci := range list.Info() {
			waiting += ci.NumWaiting
		}
		if err := list.Err(); err != nil {
			return err
		}
		if waiting != want {
			return fmt.Errorf("%d pull requests unanswered, want %d", waiting, want)
		}
		return nil
	}
}

// stallingDialer dials connections that, while armed, stop reading after
// the first bytes of the first message delivered under each consumer they
// have not seen before: the start of the answer to the live pull, and to
// every fetch of a replay (an ordered consumer is a new consumer per fetch).
// A stopped connection sends on stalled and reads again on release.
type stallingDialer struct {
	stalled, release chan struct{}
	disarmed         chan struct{}
	mu               sync.Mutex
	seen             map[string]bool
}

func newStallingDialer() *stallingDialer {
	return &stallingDialer{
		stalled: make(chan struct{}), release: make(chan struct{}), disarmed: make(chan struct{}),
		seen: map[string]bool{},
	}
}

// Dial implements nats.CustomDialer. The socket's receive buffer is small,
// so that what the connection does not read waits on the server.
func (d *stallingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetReadBuffer(128 << 10); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &stallingConn{Conn: c, d: d, closed: make(chan struct{})}, nil
}

func (d *stallingDialer) disarm() { close(d.disarmed) }

// ackPrefix starts the reply subject of every message delivered from the
// events stream; the consumer's name follows.
var ackPrefix = []byte("$JS.ACK." + ingest.EventsStream + ".")

// newConsumer reports whether b names a consumer in the reply subject of a
// delivered message that no read named before.
func (d *stallingDialer) newConsumer(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	for {
		i := bytes.Index(b, ackPrefix)
		if i < 0 {
			return found
		}
		b = b[i+len(ackPrefix):]
		end := bytes.IndexByte(b, '.')
		if end < 0 {
			return found // cut by the read: the next read has it whole
		}
		if name := string(b[:end]); !d.seen[name] {
			d.seen[name], found = true, true
		}
	}
}

type stallingConn struct {
	net.Conn
	d      *stallingDialer
	tail   []byte // the end of the last read: a subject may span two
	stall  bool
	closed chan struct{}
	once   sync.Once
}

func (c *stallingConn) Read(p []byte) (int, error) {
	if c.stall {
		c.stall = false
		select {
		case c.d.stalled <- struct{}{}:
			select {
			case <-c.d.release:
			case <-c.closed:
				return 0, net.ErrClosed
			}
		case <-c.d.disarmed:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n, err := c.Conn.Read(p)
	seen := append(c.tail, p[:n]...)
	c.stall = c.d.newConsumer(seen)
	c.tail = append(c.tail[:0], seen[max(0, len(seen)-128):]...)
	return n, err
}

func (c *stallingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
