package emit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestMiddlewareSurvivesNATSOutage sends 100,000 requests through the
// middleware while NATS is stopped. Every request completes (Emit never waits
// for the publisher, which can make no progress), every event that could not
// be kept is counted as dropped, and when NATS returns the kept events and
// new ones are published by the same Emitter, without a restart.
func TestMiddlewareSurvivesNATSOutage(t *testing.T) {
	const requests, buffer = 100_000, 1000
	ns := startNATS(t)
	nc := ns.connect()
	e := newEmitter(t, nc, WithBufferSize(buffer), WithAckTimeout(time.Second),
		WithRetryBackoff(10*time.Millisecond, 100*time.Millisecond))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		SetUser(r.Context(), "alice")
		w.WriteHeader(http.StatusUnauthorized)
	})
	h := Middleware(e)(mux)
	r := httptest.NewRequest(http.MethodPost, "/v1/auth/login", nil)
	serve := func(n int) {
		w := &statusWriter{header: http.Header{}}
		for range n {
			h.ServeHTTP(w, r)
			if w.code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.code)
				return
			}
		}
	}

	serve(10) // NATS up: published
	testkit.WaitUntil(t, 10*time.Second, "first events published", func() bool { return e.Stats().Published == 10 })

	ns.stop()
	testkit.WaitUntil(t, 10*time.Second, "client to see the server gone", func() bool { return !nc.IsConnected() })
	done := make(chan struct{})
	go func() { defer close(done); serve(requests) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("requests did not complete while NATS was down")
	}
	st := e.Stats()
	if st.Emitted != requests+10 || st.DroppedBy[DropBufferFull] != requests-buffer || st.Buffered != buffer {
		t.Fatalf("during the outage: %+v; want %d dropped buffer_full and %d buffered",
			st, requests-buffer, buffer)
	}

	ns.start() // same port and store: the stream is still there
	testkit.WaitUntil(t, 20*time.Second, "buffered events published after NATS returned", func() bool {
		return e.Stats().Pending() == 0
	})
	serve(10)
	testkit.WaitUntil(t, 10*time.Second, "new events published", func() bool { return e.Stats().Pending() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = e.Stats()
	stored := len(decodeAll(t, ns.readStream(), time.Now()))
	if st.Published != 10+buffer+10 || st.Dropped != requests-buffer || st.Emitted != st.Published+st.Dropped {
		t.Errorf("after recovery: %+v; want %d published, %d dropped", st, 10+buffer+10, requests-buffer)
	}
	if uint64(stored) != st.Published {
		t.Errorf("stream holds %d events, Published says %d", stored, st.Published)
	}
}

// statusWriter is a minimal ResponseWriter that keeps the last status.
type statusWriter struct {
	header http.Header
	code   int
}

func (w *statusWriter) Header() http.Header         { return w.header }
func (w *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusWriter) WriteHeader(code int)        { w.code = code }
