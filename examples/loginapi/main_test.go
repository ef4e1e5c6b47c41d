package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// startNATS starts an embedded NATS server with Vigil's stream and returns a
// connection to it.
func startNATS(t *testing.T) (*nats.Conn, jetstream.Stream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "VIGIL_EVENTS",
		Subjects: []string{"vigil.events.>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return nc, stream
}

func TestLoginAPIReportsRequests(t *testing.T) {
	nc, stream := startNATS(t)
	em, err := emit.New(nc, emit.WithService("loginapi"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emit.Middleware(em)(newMux(prometheus.NewRegistry())))
	defer srv.Close()

	requests := []struct {
		method, path, body, token string
		want                      int
	}{
		{"POST", "/v1/auth/login", "user=alice&password=guess1", "", 401},
		{"POST", "/v1/auth/login", "user=bob&password=guess2", "", 401},
		{"POST", "/v1/auth/login", "user=demo&password=demo", "", 200},
		{"GET", "/v1/invoices/7", "", "demo-token", 200},
		{"GET", "/v1/invoices/7", "", "stolen", 401},
	}
	for _, rq := range requests {
		req, _ := http.NewRequest(rq.method, srv.URL+rq.path, strings.NewReader(rq.body))
		if rq.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if rq.token != "" {
			req.Header.Set("Authorization", "Bearer "+rq.token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != rq.want {
			t.Errorf("%s %s: status %d, want %d", rq.method, rq.path, resp.StatusCode, rq.want)
		}
	}
	if err := em.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var got []string
	dec := event.NewDecoder(event.DefaultLimits())
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ { // events may share messages
		msg, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		dec.DecodeMessage(msg.Data, "loginapi", time.Now(),
			func(ev *event.Event) {
				got = append(got, strings.Join([]string{ev.Endpoint, http.StatusText(ev.Status), ev.User, ev.ClientID}, "|"))
			},
			func(err *event.RejectError, line []byte) { t.Errorf("rejected: %v: %s", err, line) })
	}
	want := []string{
		"/v1/auth/login|Unauthorized|alice|",
		"/v1/auth/login|Unauthorized|bob|",
		"/v1/auth/login|OK|demo|demo-app",
		"/v1/invoices/{id}|OK|demo|demo-app",
		"/v1/invoices/{id}|Unauthorized||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunStartsAndStops(t *testing.T) {
	nc, _ := startNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--nats-url", nc.ConnectedUrl(),
			"--trusted-proxies", "10.0.0.0/8, 127.0.0.1"}, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "loginapi listening") {
		if time.Now().After(deadline) {
			t.Fatal("loginapi did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if err := run(context.Background(), []string{"--trusted-proxies", "proxy.internal"}, io.Discard); err == nil {
		t.Error("run accepted a host name as trusted proxy")
	}
}
