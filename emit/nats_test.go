package emit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

const streamName = "VIGIL_EVENTS"

// natsServer is an embedded nats-server with JetStream that a test can stop
// and start again on the same port and store.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
	// ingestQueue, when set, is how many published messages a stream may
	// hold waiting to be stored before the server answers 429.
	ingestQueue int
}

// startNATS starts an embedded server on a random loopback port with its
// store in a temporary directory, and creates Vigil's stream on it.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	ns := startNATSWithoutStream(t)
	ns.createStream()
	return ns
}

// startNATSWithoutStream is startNATS before Vigil has created its stream.
func startNATSWithoutStream(t testing.TB) *natsServer {
	t.Helper()
	ns := &natsServer{t: t, dir: t.TempDir(), port: server.RANDOM_PORT}
	ns.start()
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(ns.stop)
	return ns
}

func (ns *natsServer) createStream() {
	t := ns.t
	t.Helper()
	nc := ns.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{"vigil.events.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

func (ns *natsServer) start() {
	ns.t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: ns.port, JetStream: true, StoreDir: ns.dir,
		NoLog: true, NoSigs: true, StreamMaxBufferedMsgs: ns.ingestQueue,
	})
	if err != nil {
		ns.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		ns.t.Fatal("nats server not ready in 10s")
	}
	ns.srv = srv
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}

func (ns *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", ns.port) }

// connect returns a client connection that reconnects quickly and forever;
// the test's cleanup closes it.
func (ns *natsServer) connect() *nats.Conn {
	ns.t.Helper()
	nc, err := nats.Connect(ns.url(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0))
	if err != nil {
		ns.t.Fatalf("connect: %v", err)
	}
	ns.t.Cleanup(nc.Close)
	return nc
}

// storedMsg is one message read back from the stream.
type storedMsg struct {
	subject string
	msgID   string
	lines   [][]byte
}

// readStream returns every message in Vigil's stream, in order.
func (ns *natsServer) readStream() []storedMsg {
	ns.t.Helper()
	nc := ns.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		ns.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		ns.t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		ns.t.Fatal(err)
	}
	var out []storedMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			ns.t.Fatalf("get message %d: %v", seq, err)
		}
		out = append(out, storedMsg{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader),
			lines: bytes.Split(m.Data, []byte("\n"))})
	}
	return out
}

// decodeAll validates every line of msgs with Vigil's decoder and returns
// the events; an invalid line fails the test.
func decodeAll(t testing.TB, msgs []storedMsg, now time.Time) []event.Event {
	t.Helper()
	dec := event.NewDecoder(event.DefaultLimits())
	var out []event.Event
	for _, m := range msgs {
		service := m.subject[len("vigil.events."):]
		for i, line := range m.lines {
			var ev event.Event
			if err := dec.Decode(line, service, now, &ev); err != nil {
				t.Fatalf("message %s line %d rejected: %v\n%s", m.msgID, i+1, err, line)
			}
			out = append(out, ev)
		}
	}
	return out
}

// newEmitter returns an Emitter on nc that the test closes.
func newEmitter(t testing.TB, nc *nats.Conn, opts ...Option) *Emitter {
	t.Helper()
	e, err := New(nc, append([]Option{WithService("api")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
	return e
}
