//go:build unix

package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/simulate"
)

// BenchmarkClusterThroughput drains a backlog of ordinary simulated
// traffic (NDJSON, up to 100 events per message, as emit sends them) with
// the transport's ceiling and with Vigil, in the same iteration on the same
// stream, and reports both:
//
//   - single: one daemon with its embedded NATS server (the default);
//   - cluster-1: a three-node NATS cluster in this process, the streams
//     on three replicas, one daemon with cluster.enabled;
//   - cluster-3: the same with three daemons (the active member and two
//     warm standbys following it).
//
// The ceiling is a durable consumer configured as Vigil's that only
// receives and acknowledges each message. Times are the server's record,
// from the durable consumer's creation to its last acknowledgement. CPU is
// this process's (getrusage), so it includes the nats-server(s) running in
// it: the ceiling is measured the same way, and the difference is Vigil's.
// For cluster-3 the CPU window ends when both standbys have applied every
// event too. Run with -benchtime 1x; VIGIL_BENCH_EVENTS sets the events
// per iteration (default 1,000,000):
//
//	go test ./daemon -run '^$' -bench ClusterThroughput -benchtime 1x -count 5
func BenchmarkClusterThroughput(b *testing.B) {
	n := tputEvents()
	b.Run("single", func(b *testing.B) {
		for range b.N {
			benchSingle(b, n)
		}
	})
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("cluster-%d", members), func(b *testing.B) {
			for range b.N {
				benchCluster(b, n, members)
			}
		})
	}
}

// tputEvents is the events per iteration: VIGIL_BENCH_EVENTS, or 1,000,000.
func tputEvents() int {
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_EVENTS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// tputLateness is detect.lateness for a drain: the backlog's events are
// older than the default lateness by the time they are consumed.
const tputLateness = detect.MaxLateness

func benchSingle(b *testing.B, n int) {
	cfg := tputConfig(b)
	d, err := New(context.Background(), cfg, Options{Version: "bench", Stdout: io.Discard, Logger: tputLogger()})
	if err != nil {
		b.Fatal(err)
	}
	tputMeasure(b, d.NATSURL(), 1, n, []*Daemon{d}, []*server.Server{d.ns})
}

func benchCluster(b *testing.B, n, members int) {
	cl := testkit.RunCluster(b, 3)
	defer func() {
		for i := range cl.Nodes {
			cl.Stop(i)
		}
	}()
	ds := make([]*Daemon, members)
	errs := make([]error, members)
	var starting sync.WaitGroup
	for i := range ds {
		cfg := tputConfig(b)
		cfg.NATS.URL, cfg.NATS.Replicas = cl.URLs(), 3
		cfg.Cluster.Enabled, cfg.Cluster.Member = true, fmt.Sprintf("m%d", i+1)
		starting.Go(func() {
			ds[i], errs[i] = New(context.Background(), cfg, Options{Version: "bench", Stdout: io.Discard, Logger: tputLogger()})
		})
	}
	starting.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	tputMeasure(b, cl.URLs(), 3, n, ds, cl.Nodes)
}

// tputLogger discards the daemons' log, or with VIGIL_BENCH_LOG=1 writes
// their warnings to standard error.
func tputLogger() *slog.Logger {
	if os.Getenv("VIGIL_BENCH_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tputConfig is the default configuration on loopback ports, with its own
// data directory and lateness for a drain.
func tputConfig(b *testing.B) config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.DataDir = b.TempDir()
	cfg.Detect.Lateness = tputLateness
	return cfg
}

// tputMeasure declares the streams on the NATS at url (the daemons ds
// were made by New and not run yet; nodes are the NATS servers), fills the
// events stream with n events, drains it with the ceiling, then runs ds
// until the active one has acknowledged every message and every member has
// applied every event, stops them and reports.
func tputMeasure(b *testing.B, url string, replicas, n int, ds []*Daemon, nodes []*server.Server) {
	for _, d := range ds {
		defer d.Close() // when a failure stops the benchmark before Run
	}
	nc, js := testkit.ConnectURL(b, url)
	defer nc.Close()
	ctx := b.Context()
	msgs, last, ceil, ceilCPU := tputBacklog(ctx, b, js, replicas, n)

	cpu0 := cpuTime()
	stop := tputRun(b, ds)
	defer stop()
	vigil := tputDrained(ctx, b, js, ingest.DefaultConfig().Consumer, last)
	drained, drainedAt := cpuTime()-cpu0, time.Now()
	testkit.WaitFor(b, 5*time.Minute, "every member applied every event", func() error {
		for i, d := range ds {
			if d.failover == nil {
				continue
			}
			if applied, _ := d.failover.progress(); applied < last {
				return fmt.Errorf("member %d applied up to message %d of %d", i+1, applied, last)
			}
		}
		return nil
	})
	vigilCPU, followed := cpuTime()-cpu0, time.Since(drainedAt)
	received := 0.0
	for _, d := range ds {
		received += counterSum(b, d, "vigil_events_received_total")
	}
	if received != float64(n) {
		// Reported, not failed: a failed benchmark prints no figures.
		b.Logf("the members received %v events, want %d (one active member receives them all)", received, n)
	}
	stop()

	// A connection the server closed as a slow consumer, or any other
	// reconnect of a member, explains a slow run.
	slow, reconnects := int64(0), uint64(0)
	for _, s := range nodes {
		slow += tputSlowConsumers(b, s)
	}
	for _, d := range ds {
		reconnects += d.nc.Stats().Reconnects
	}
	b.ReportMetric(float64(n)-received, "events-missing")
	b.ReportMetric(float64(slow), "slow-consumers")
	b.ReportMetric(float64(reconnects), "reconnects")
	b.ReportMetric(float64(msgs)/ceil.Seconds(), "ceiling-msgs/s")
	b.ReportMetric(float64(n)/ceil.Seconds(), "ceiling-events/s")
	b.ReportMetric(float64(n)/vigil.Seconds(), "vigil-events/s")
	b.ReportMetric(100*ceil.Seconds()/vigil.Seconds(), "%-of-ceiling")
	b.ReportMetric(ceilCPU.Seconds()*1e6/float64(n), "ceiling-cpu-us/event")
	b.ReportMetric(drained.Seconds()*1e6/float64(n), "drain-cpu-us/event")
	b.ReportMetric(vigilCPU.Seconds()*1e6/float64(n), "vigil-cpu-us/event")
	if len(ds) > 1 {
		b.ReportMetric(followed.Seconds(), "standbys-behind-s")
	}
}

// tputBacklog declares the streams (on replicas), fills the events stream
// with n events and drains it with the ceiling. It returns the number of
// messages, the sequence of the last, and the ceiling's time and CPU.
func tputBacklog(ctx context.Context, b *testing.B, js jetstream.JetStream, replicas, n int) (msgs int, last uint64, ceil, cpu time.Duration) {
	if err := ingest.EnsureStreams(ctx, js, ingest.DefaultConfig(), replicas); err != nil {
		b.Fatal(err)
	}
	ms := tputMessages(1, n)
	last = tputPrefill(b, js, 0, ms)
	cpu0 := cpuTime()
	ceil = tputCeiling(ctx, b, js, last)
	return len(ms), last, ceil, cpuTime() - cpu0
}

// tputMessages builds n events of ordinary simulated traffic (from the
// simulator's seed), stamped at 2,000 events a second of event time up to
// now, in NDJSON messages of up to emit.DefaultMaxBatch events of one
// service each (an emitter's batches).
func tputMessages(seed uint64, n int) []*nats.Msg {
	gen := simulate.NewGenerator(seed, nil)
	type batch struct {
		data []byte
		ids  []string
	}
	open := map[string]*batch{}
	var msgs []*nats.Msg
	flush := func(svc string, bt *batch) {
		m := nats.NewMsg(ingest.SubjectPrefix + svc)
		m.Data = bt.data
		m.Header.Set(jetstream.MsgIDHeader, emit.BatchID(bt.ids...))
		msgs = append(msgs, m)
		delete(open, svc)
	}
	start := time.Now().Add(-time.Duration(n) * time.Second / 2000)
	var ev event.Event
	for i := range n {
		gen.Normal(start.Add(time.Duration(i)*time.Second/2000), &ev)
		bt := open[ev.Service]
		if bt == nil {
			bt = &batch{}
			open[ev.Service] = bt
		} else {
			bt.data = append(bt.data, '\n')
		}
		bt.data = ev.AppendJSON(bt.data)
		bt.ids = append(bt.ids, ev.RequestID)
		if len(bt.ids) == emit.DefaultMaxBatch {
			flush(ev.Service, bt)
		}
	}
	for svc, bt := range open {
		flush(svc, bt)
	}
	return msgs
}

// tputPrefill publishes msgs to a stream holding base messages, at most
// 1024 unacknowledged at a time, and returns the stream sequence of the
// last.
func tputPrefill(b *testing.B, js jetstream.JetStream, base uint64, msgs []*nats.Msg) uint64 {
	var last uint64
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second))
		if err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
		if i == len(msgs)-1 || js.PublishAsyncPending() >= 1024 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatalf("%d publishes not acknowledged within a minute", js.PublishAsyncPending())
			}
		}
		if i == len(msgs)-1 {
			select {
			case ack := <-f.Ok():
				last = ack.Sequence
			case err := <-f.Err():
				b.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	if last != base+uint64(len(msgs)) {
		b.Fatalf("the stream holds %d messages, want %d (a publish failed)", last, base+uint64(len(msgs)))
	}
	return last
}

// tputCeiling drains the stream with a durable consumer configured as
// Vigil's that acknowledges each message without reading it, deletes it,
// and returns the server's time from its creation to its last ack.
func tputCeiling(ctx context.Context, b *testing.B, js jetstream.JetStream, last uint64) time.Duration {
	return tputConsume(ctx, b, js, ingest.EventsStream, "ceiling", last, func(m jetstream.Msg) { _ = m.Ack() },
		jetstream.PullMaxMessages(ingest.DefaultConfig().FetchBatch))
}

// tputConsume drains stream up to sequence last with a durable consumer
// name configured as Vigil's that passes each message to handle (which
// acknowledges it), with opts, deletes it, and returns the server's time
// from its creation to its last ack.
func tputConsume(ctx context.Context, b *testing.B, js jetstream.JetStream, stream, name string, last uint64,
	handle jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) time.Duration {
	cfg := ingest.DefaultConfig()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: name, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(handle, opts...)
	if err != nil {
		b.Fatal(err)
	}
	d := tputDrainedOn(ctx, b, js, stream, name, last)
	cc.Stop()
	if err := js.DeleteConsumer(ctx, stream, name); err != nil {
		b.Fatal(err)
	}
	return d
}

// tputDrained waits until the durable consumer name has acknowledged every
// message up to last and returns the server's time from its creation to
// its last acknowledgement.
func tputDrained(ctx context.Context, b *testing.B, js jetstream.JetStream, name string, last uint64) time.Duration {
	return tputDrainedOn(ctx, b, js, ingest.EventsStream, name, last)
}

// tputDrainedOn is tputDrained on stream.
func tputDrainedOn(ctx context.Context, b *testing.B, js jetstream.JetStream, stream, name string, last uint64) time.Duration {
	var ci *jetstream.ConsumerInfo
	testkit.WaitFor(b, 3*time.Minute, "consumer "+name+" drained stream "+stream, func() error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, stream, name)
		if err != nil {
			return err
		}
		if ci, err = cons.Info(ctx); err != nil {
			return err
		}

		if ci.AckFloor.Stream < last || ci.AckFloor.Last == nil {
			return fmt.Errorf("acknowledged up to %d of %d (delivered up to %d, %d awaiting an ack, %d redelivered)",
				ci.AckFloor.Stream, last, ci.Delivered.Stream, ci.NumAckPending, ci.NumRedelivered)
		}
		return nil
	})
	return ci.AckFloor.Last.Sub(ci.Created)
}

// tputSlowConsumers is how many client connections s closed as slow
// consumers.
func tputSlowConsumers(b *testing.B, s *server.Server) int64 {
	v, err := s.Varz(nil)
	if err != nil {
		b.Fatal(err)
	}
	if r := v.SlowConsumersStats.Routes; r > 0 {
		b.Logf("nats node %s closed %d routes as slow consumers", v.Name, r)
	}
	return int64(v.SlowConsumersStats.Clients)
}

// tputRun runs ds and returns the function that stops them (once).
func tputRun(b *testing.B, ds []*Daemon) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() {
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				b.Errorf("Run: %v", err)
			}
		})
	}
	return sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// counterSum is the sum of the counter name's series in d's registry.
func counterSum(b *testing.B, d *Daemon, name string) float64 {
	mfs, err := d.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
