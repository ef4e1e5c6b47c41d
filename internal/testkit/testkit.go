// Package testkit holds what the tests of several packages share: an
// embedded NATS server with JetStream, a connection to it, a buffer that
// loggers and tests may use at once, the one polling helper (WaitFor and
// WaitUntil) and a goroutine-leak check. Only tests import it.
package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunNATS starts an embedded nats-server with JetStream on a random
// loopback port, storing in a temporary directory; it is shut down when the
// test ends. Each of set may change its options first.
func RunNATS(t testing.TB, set ...func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	}
	for _, f := range set {
		f(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a connection to s with JetStream; it is closed when the
// test ends unless closed before.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, s.ClientURL())
}

// ConnectURL is Connect for a server or cluster given by its client URLs
// (comma-separated).
func ConnectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls check every 10ms until it returns nil, and fails t with
// check's last error when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitUntil polls cond every 10ms until it holds, and fails t when timeout
// passes first; WaitFor is the same for a check that says what it still
// waits for.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, timeout, what, func() error {
		if !cond() {
			return errNotYet
		}
		return nil
	})
}

var errNotYet = errors.New("not yet")

// StreamEmpty returns a check for WaitFor that passes once the stream
// name holds no message.
func StreamEmpty(js jetstream.JetStream, name string) func() error { return StreamHolds(js, name, 0) }

// StreamHolds returns a check for WaitFor that passes once the stream name
// holds n messages.
func StreamHolds(js jetstream.JetStream, name string, n uint64) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != n {
			return fmt.Errorf("%d messages in %s", info.State.Msgs, name)
		}
		return nil
	}
}
