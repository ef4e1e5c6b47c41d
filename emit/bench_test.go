package emit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// benchHandler is a login endpoint that does nothing, so that the benchmark
// measures the middleware.
func benchHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", func(w http.ResponseWriter, r *http.Request) {
		SetUser(r.Context(), "alice")
		w.WriteHeader(http.StatusUnauthorized)
	})
	return mux
}

// BenchmarkMiddleware measures the cost per request of the middleware
// (compare with "no middleware"), with NATS up and with NATS down. With NATS
// down the buffer fills and then every event is dropped, which must cost no
// more. With NATS up the benchmark pauses its clock every 4096 requests until
// the publisher has emptied the buffer, so that it measures requests while
// events are being published rather than a saturated, dropping emitter
// (dropped/op says whether that held).
func BenchmarkMiddleware(b *testing.B) {
	cases := []struct {
		name     string
		mode     string
		parallel bool
	}{
		{"no middleware/serial", "none", false},
		{"no middleware/parallel", "none", true},
		{"nats up/serial", "up", false},
		{"nats down/serial", "down", false},
		{"nats down/parallel", "down", true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h, e := benchSetup(b, c.mode)
			r := httptest.NewRequest(http.MethodPost, "/v1/auth/login", nil)
			r.RemoteAddr = "203.0.113.7:51234"
			r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
			b.ReportAllocs()
			b.ResetTimer()
			if c.parallel {
				b.RunParallel(func(pb *testing.PB) {
					w := &statusWriter{header: http.Header{}}
					for pb.Next() {
						h.ServeHTTP(w, r)
					}
				})
				return
			}
			w := &statusWriter{header: http.Header{}}
			for i := range b.N {
				h.ServeHTTP(w, r)
				if c.mode == "up" && i%4096 == 4095 {
					b.StopTimer()
					for len(e.pub.in) > 0 {
						runtime.Gosched()
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if c.mode == "up" {
				b.ReportMetric(float64(e.Stats().Dropped)/float64(b.N), "dropped/op")
			}
		})
	}
}

func benchSetup(b *testing.B, mode string) (http.Handler, *Emitter) {
	if mode == "none" {
		return benchHandler(), nil
	}
	ns := startNATS(b)
	nc := ns.connect()
	e := newEmitter(b, nc)
	if mode == "down" {
		ns.stop()
		testkit.WaitUntil(b, 10*time.Second, "client to see the server gone", func() bool { return !nc.IsConnected() })
	}
	return Middleware(e)(benchHandler()), e
}

// BenchmarkEmitterThroughput publishes events into JetStream (file storage,
// acknowledged) and reports events/s from the first Emit to the last ack.
func BenchmarkEmitterThroughput(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ns := startNATS(b)
			e := newEmitter(b, ns.connect(), WithMaxBatch(batch), WithBufferSize(1<<16))
			ev := testEvent(1)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				ev.RequestID = fmt.Sprintf("bench-%d", i)
				for len(e.pub.in) > cap(e.pub.in)-64 {
					runtime.Gosched() // keep the buffer from overflowing: measure publishing, not drops
				}
				e.Emit(ev)
			}
			testkit.WaitUntil(b, time.Minute, "all events published", func() bool {
				return e.Stats().Published == uint64(b.N)
			})
			elapsed := time.Since(start)
			b.StopTimer()
			st := e.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(st.Published)/float64(st.Messages), "events/msg")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = e.Close(ctx)
		})
	}
}
