// Command testserver runs a NATS server with JetStream for the Node.js
// example's tests: an embedded nats-server on 127.0.0.1 with a random port
// and a temporary store, with Vigil's stream VIGIL_EVENTS created. It prints
// one JSON object per line on stdout:
//
//	{"type":"ready","url":"nats://127.0.0.1:PORT"}
//	{"type":"message","seq":1,"subject":"vigil.events.api","msg_id":"...",
//	 "request_ids":["..."],"lines":["{...}"],"valid":1,"rejects":[]}
//
// one "message" line per message stored in the stream, with its NDJSON
// lines, each judged by Vigil's own event validator (request_ids of the
// valid ones; rejects hold the reasons of the others). Lines
// on stdin are commands: "stop" shuts the NATS server down (keeping its
// store) and answers {"type":"stopped"}; "start" starts it again on the same
// port and answers {"type":"started"}. It exits on stdin EOF, SIGINT or
// SIGTERM, removing its store.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

const (
	streamName    = "VIGIL_EVENTS"
	subjectPrefix = "vigil.events."
	pollInterval  = 10 * time.Millisecond
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

// output writes JSON lines; it is shared by the command loop and the
// stream reader.
type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *output) write(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(v)
}

func run(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	dir, err := os.MkdirTemp("", "vigil-testserver-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns := &natsServer{dir: dir, port: server.RANDOM_PORT}
	if err := ns.start(); err != nil {
		return err
	}
	defer ns.stop()
	ns.port = ns.srv.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("nats://127.0.0.1:%d", ns.port)

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Subjects: []string{subjectPrefix + ">"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}

	out := &output{enc: json.NewEncoder(stdout)}
	out.write(map[string]string{"type": "ready", "url": url})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { readStream(ctx, stream, out) })
	defer wg.Wait()
	defer cancel()
	return commands(ctx, stdin, ns, out)
}

// commands executes stdin commands until EOF or ctx is done.
func commands(ctx context.Context, stdin io.Reader, ns *natsServer, out *output) error {
	lines := make(chan string)
	go func() { // ends at stdin EOF, which also ends the process
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			switch line {
			case "stop":
				ns.stop()
				out.write(map[string]string{"type": "stopped"})
			case "start":
				if ns.srv != nil {
					out.write(map[string]string{"type": "error", "error": "already running"})
					continue
				}
				if err := ns.start(); err != nil {
					return err
				}
				out.write(map[string]string{"type": "started"})
			default:
				out.write(map[string]string{"type": "error", "error": "unknown command " + line})
			}
		}
	}
}

// report is one stored message as judged by Vigil's validator.
type report struct {
	Type       string   `json:"type"`
	Seq        uint64   `json:"seq"`
	Subject    string   `json:"subject"`
	MsgID      string   `json:"msg_id"`
	RequestIDs []string `json:"request_ids"`
	Lines      []string `json:"lines"`
	Valid      int      `json:"valid"`
	Rejects    []string `json:"rejects"`
}

// readStream reports every message of the stream in order, following it
// across server restarts, until ctx is done.
func readStream(ctx context.Context, stream jetstream.Stream, out *output) {
	dec := event.NewDecoder(event.DefaultLimits())
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for seq := uint64(1); ; {
		getCtx, cancel := context.WithTimeout(ctx, time.Second)
		msg, err := stream.GetMsg(getCtx, seq)
		cancel()
		if err == nil {
			out.write(judge(dec, msg))
			seq++
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
			out.write(map[string]string{"type": "warning", "error": err.Error()})
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func judge(dec *event.Decoder, msg *jetstream.RawStreamMsg) report {
	r := report{Type: "message", Seq: msg.Sequence, Subject: msg.Subject,
		MsgID: msg.Header.Get(jetstream.MsgIDHeader), RequestIDs: []string{}, Rejects: []string{},
		Lines: strings.Split(string(msg.Data), "\n")}
	service := ""
	if len(msg.Subject) > len(subjectPrefix) {
		service = msg.Subject[len(subjectPrefix):]
	}
	valid, _ := dec.DecodeMessage(msg.Data, service, time.Now(),
		func(ev *event.Event) { r.RequestIDs = append(r.RequestIDs, ev.RequestID) },
		func(err *event.RejectError, _ []byte) { r.Rejects = append(r.Rejects, err.Error()) })
	r.Valid = valid
	return r
}

// natsServer is the embedded server, restartable on the same port and store.
type natsServer struct {
	dir  string
	port int
	srv  *server.Server
}

func (ns *natsServer) start() error {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: ns.port, JetStream: true, StoreDir: ns.dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("nats server not ready in 10s")
	}
	ns.srv = srv
	return nil
}

func (ns *natsServer) stop() {
	if ns.srv != nil {
		ns.srv.Shutdown()
		ns.srv.WaitForShutdown()
		ns.srv = nil
	}
}
