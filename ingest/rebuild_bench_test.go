package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/rules"
)

// BenchmarkRebuild measures the start-up rebuild of detection windows: a
// replay of 400,000 stored events (4,000 messages of 100, half an hour of
// varied traffic: 60,000 addresses, 20,000 users, a tenth failing) into a
// detection engine running the shipped rules, as daemon.Run does before
// live intake. events/s is the rebuild's rate, decoding and detection
// included.
func BenchmarkRebuild(b *testing.B) {
	const msgs, perMsg = 4000, 100
	s := testkit.RunNATS(b)
	nc, js := testkit.Connect(b, s)
	cfg := ingest.DefaultConfig()
	ctx := context.Background()
	if err := ingest.EnsureStreams(ctx, js, cfg, 1); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now().Add(-30 * time.Minute)
	for m := range msgs {
		var data []byte
		for i := range perMsg {
			n := m*perMsg + i
			ev := event.Event{
				Time:     start.Add(time.Duration(n) * 30 * time.Minute / (msgs * perMsg)),
				Service:  "api",
				Method:   "POST",
				Endpoint: []string{"/v1/login", "/v1/orders", "/v1/orders/{id}", "/v1/profile"}[r.IntN(4)],
				Status:   []int{200, 200, 200, 200, 200, 200, 201, 204, 401, 404}[r.IntN(10)],
				SourceIP: netip.AddrFrom4([4]byte{10, byte(r.IntN(240)), byte(r.IntN(250)), 1}),
				User:     fmt.Sprintf("user-%d", r.IntN(20000)), LatencyMS: float64(r.IntN(400)), HasLatency: true,
				RequestID: fmt.Sprintf("req-%d", n),
			}
			if i > 0 {
				data = append(data, '\n')
			}
			data = ev.AppendJSON(data)
		}
		if _, err := js.PublishAsync(subject, data); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing the events took over a minute")
	}
	rs, err := rules.Load("")
	if err != nil {
		b.Fatal(err)
	}
	c, err := ingest.New(cfg, nc, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	// The durable consumer delivers every message once, as before a
	// restart; the rebuild replays up to what it delivered.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	testkit.WaitFor(b, time.Minute, "every message consumed", settled(c))
	stop()
	<-done
	var took time.Duration
	for b.Loop() {
		eng, err := detect.New(rs, detect.Options{})
		if err != nil {
			b.Fatal(err)
		}
		eng.SetMuted(true)
		t0 := time.Now()
		rep, err := c.Rebuild(ctx, start.Add(-time.Minute), eng)
		took += time.Since(t0)
		eng.Close()
		if err != nil || rep.Events != msgs*perMsg {
			b.Fatalf("Rebuild replayed %d events (err %v), want %d", rep.Events, err, msgs*perMsg)
		}
	}
	b.ReportMetric(float64(msgs*perMsg)*float64(b.N)/took.Seconds(), "events/s")
}
