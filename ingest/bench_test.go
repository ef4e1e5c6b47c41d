package ingest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
)

// BenchmarkDecodeValidateObserve measures the per-event ingest hot path
// without NATS: decode and validate one event (with ingest's aliasing
// decoder), then update the metrics.
func BenchmarkDecodeValidateObserve(b *testing.B) {
	now := time.Now()
	lines := make([][]byte, 64)
	for i := range lines {
		ev := event.Event{
			Time: now.Add(-time.Second), Service: "billing", RequestID: fmt.Sprintf("req-%d", i),
			Method: "GET", Endpoint: fmt.Sprintf("/v1/invoices/{id}/%d", i%8), Path: "/v1/invoices/123",
			Status: []int{200, 201, 404, 401}[i%4], LatencyMS: 12.5, HasLatency: true,
			SourceIP: netip.MustParseAddr("203.0.113.9"), User: "alice@example.com",
			ClientID: "web", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		}
		lines[i] = ev.AppendJSON(nil)
	}
	m := NewMetrics(prometheus.NewRegistry(), DefaultConfig())
	dec := newReader(DefaultConfig().Limits()).dec
	var ev event.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := dec.Decode(lines[i%len(lines)], "billing", now, &ev); err != nil {
			b.Fatal(err)
		}
		m.Observe(&ev, now)
	}
}

// BenchmarkObserve measures Metrics.Observe alone over a mix of 4
// services, 32 endpoints each, 5 methods and 6 status codes.
func BenchmarkObserve(b *testing.B) {
	now := time.Now()
	evs := make([]event.Event, 4096)
	for i := range evs {
		evs[i] = event.Event{
			Time: now.Add(-time.Second), Service: fmt.Sprintf("svc-%d", i%4),
			Endpoint: fmt.Sprintf("/v1/resource-%d/{id}", i%32), Method: []string{"GET", "POST", "PUT", "DELETE", "PATCH"}[i%5],
			Status: []int{200, 201, 204, 401, 404, 500}[i%6], LatencyMS: float64(i % 100), HasLatency: true,
		}
	}
	m := NewMetrics(prometheus.NewRegistry(), DefaultConfig())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Observe(&evs[i%len(evs)], now)
	}
}
