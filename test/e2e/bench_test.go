package e2e

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/rules"
)

// Throughput benchmarks. Each iteration fills a fresh stream on an external
// nats-server process and drains it; run them with -benchtime 1x (one
// iteration is several seconds). VIGIL_E2E_BENCH_EVENTS sets how many
// events a run uses (default 200,000).

func benchEvents() int { return envInt("VIGIL_E2E_BENCH_EVENTS", 200_000) }

// envInt returns the positive integer in the environment variable name, or
// def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkOneEventPerMessage compares the vigil binary (default rules, one
// event per message, file-backed stream, explicit acks) with the
// transport's ceiling: consumers in the test process that only receive and
// acknowledge the same messages. The ceiling is a prefetching Consume that
// acknowledges each message (AckExplicit), the transport pattern Vigil
// uses; two more are measured for comparison: the fetch-then-ack-each loop
// Vigil used before, and AckAll with one acknowledgement per batch (faster,
// and rejected: see ingest.consumerConfig).
func BenchmarkOneEventPerMessage(b *testing.B) {
	n := benchEvents()
	for range b.N {
		ns := startNATSServer(b)
		c := connect(b, ns.url())
		c.ensureStreams(b)
		c.prefill(b, n, normalMsgs(1))
		consume := ceiling(b, c, "ceiling-consume", ceilingConsume)
		fetch := ceiling(b, c, "ceiling-fetch", ceilingFetch)
		ackAll := ceiling(b, c, "ceiling-ackall", ceilingAckAll)
		v := newVigil(b, benchConfig(ns.url()))
		got := c.drained(b, ingest.DefaultConfig().Consumer, 5*time.Minute)
		if r := v.metric("vigil_events_received_total"); r != float64(n) {
			b.Fatalf("vigil applied %v events, want %d", r, n)
		}
		b.ReportMetric(float64(n)/consume.Seconds(), "ceiling-msgs/s")
		b.ReportMetric(float64(n)/fetch.Seconds(), "fetch-loop-msgs/s")
		b.ReportMetric(float64(n)/ackAll.Seconds(), "ackall-msgs/s")
		b.ReportMetric(float64(n)/got.Seconds(), "vigil-msgs/s")
		b.ReportMetric(100*consume.Seconds()/got.Seconds(), "%-of-ceiling")
		v.stop()
		ns.stop()
	}
}

// BenchmarkNDJSON measures events/s with about 100 events per message:
// draining a backlog, and end to end, publishing while Vigil consumes (from
// the first publish until the server has Vigil's acknowledgement of the
// last message, which Vigil sends once it has applied its events). Each is
// compared with the transport's ceiling on the same server in the same
// run: a consumer in the test process that only receives and acknowledges.
// The end of a run is read from the server's records, so that polling
// Vigil's metrics costs it nothing while it works. It also reports the CPU
// time Vigil used per event and how many of the machine's cores were busy.
func BenchmarkNDJSON(b *testing.B) {
	const perMsg = 100
	n := benchEvents() / perMsg * perMsg
	for range b.N {
		ns := startNATSServer(b)
		c := connect(b, ns.url())
		c.ensureStreams(b)
		c.prefill(b, n/perMsg, normalMsgs(perMsg))
		ceilDrain := ceiling(b, c, "ceiling-consume", ceilingConsume)
		v := newVigil(b, benchConfig(ns.url()))
		drain := c.drained(b, ingest.DefaultConfig().Consumer, 5*time.Minute)
		b.ReportMetric(float64(n)/ceilDrain.Seconds(), "ceiling-drain-events/s")
		b.ReportMetric(float64(n)/drain.Seconds(), "drain-events/s")

		msgs := preparedMsgs(n/perMsg, perMsg)
		cpu0, busy0, start := v.metric("process_cpu_seconds_total"), machineBusy(), time.Now()
		pub := c.prefill(b, len(msgs), func(i int) *nats.Msg { return msgs[i] })
		ci := c.allAckedBy(b, ingest.DefaultConfig().Consumer, 5*time.Minute)
		busy, window := machineBusy()-busy0, time.Since(start)
		e2e := ci.AckFloor.Last.Sub(start)
		cpu := v.metric("process_cpu_seconds_total") - cpu0
		if r := v.metric("vigil_events_received_total"); r != float64(2*n) {
			b.Fatalf("vigil applied %v events, want %d", r, 2*n)
		}
		b.ReportMetric(float64(n)/pub.Seconds(), "publish-events/s")
		b.ReportMetric(float64(n)/e2e.Seconds(), "end-to-end-events/s")
		b.ReportMetric(cpu*1e6/float64(n), "vigil-cpu-µs/event")
		b.ReportMetric(busy.Seconds()/window.Seconds(), "end-to-end-busy-cores")
		if m, err := v.metrics(); err == nil {
			b.ReportMetric(sumMetric(m, "vigil_alerts_total"), "alert-transitions")
		}
		v.stop()

		msgs = preparedMsgs(n/perMsg, perMsg)
		busy0, start = machineBusy(), time.Now()
		ceilE2E := ceilingLive(b, c, ns.url(), msgs)
		busy, window = machineBusy()-busy0, time.Since(start)
		b.ReportMetric(float64(n)/ceilE2E.Seconds(), "ceiling-end-to-end-events/s")
		b.ReportMetric(busy.Seconds()/window.Seconds(), "ceiling-end-to-end-busy-cores")
		b.ReportMetric(100*ceilE2E.Seconds()/e2e.Seconds(), "%-of-ceiling-end-to-end")
		ns.stop()
	}
}

// preparedMsgs builds n messages of ordinary traffic, perMsg events each, so
// that publishing them costs the publisher no more than the send.
func preparedMsgs(n, perMsg int) []*nats.Msg {
	msgs := make([]*nats.Msg, n)
	next := normalMsgs(perMsg)
	for i := range msgs {
		msgs[i] = next(i)
	}
	return msgs
}

// benchConfig runs the daemon on an external NATS for a drain, with
// VIGIL_E2E_FETCH_BATCH as ingest.fetch_batch and VIGIL_E2E_VIGIL_GOGC as
// the daemon's GOGC (alone: the test process and nats-server keep theirs)
// when set.
func benchConfig(url string) vigilConfig {
	cfg := vigilConfig{NATSURL: url, Lateness: drainLateness}
	if gc := os.Getenv("VIGIL_E2E_VIGIL_GOGC"); gc != "" {
		cfg.Env = []string{"GOGC=" + gc}
	}
	if fb := envInt("VIGIL_E2E_FETCH_BATCH", 0); fb > 0 {
		cfg.Ingest = map[string]string{"fetch_batch": strconv.Itoa(fb)}
	}
	return cfg
}

// BenchmarkConsumerInProcess runs ingest.Consumer with the default rules in
// the test process against an external nats-server, so that a CPU profile
// shows where ingest spends its time. VIGIL_E2E_CPUPROFILE names a file to
// write the profile of the drain alone to (go test's -cpuprofile would also
// cover filling the stream):
//
//	VIGIL_E2E_CPUPROFILE=/tmp/cpu.out go test -run '^$' -bench ConsumerInProcess -benchtime 1x ./test/e2e/
//
// VIGIL_E2E_BENCH_BATCH sets events per message (default 1),
// VIGIL_E2E_FETCH_BATCH the consumer's fetch_batch, and VIGIL_E2E_BENCH_BAD=1
// mixes a malformed message after each valid one (the flood scenario).
func BenchmarkConsumerInProcess(b *testing.B) {
	perMsg := envInt("VIGIL_E2E_BENCH_BATCH", 1)
	cfg := ingest.DefaultConfig()
	cfg.FetchBatch = envInt("VIGIL_E2E_FETCH_BATCH", cfg.FetchBatch)
	cfg.MaxAckPending = max(cfg.MaxAckPending, 4*cfg.FetchBatch)
	n := benchEvents() / perMsg * perMsg
	for range b.N {
		b.StopTimer()
		ns := startNATSServer(b)
		c := connect(b, ns.url())
		c.ensureStreams(b)
		bad := 0
		if envInt("VIGIL_E2E_BENCH_BAD", 0) > 0 {
			bad = n / perMsg
		}
		c.prefill(b, n/perMsg+bad, mixMsgs(perMsg, bad))
		eng := newBenchEngine(b)
		cons, err := ingest.New(cfg, c.nc, ingest.Options{Sink: eng})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		stopProfile := startProfile(b)
		b.StartTimer()
		wg.Go(func() { _ = cons.Run(ctx) })
		d := c.drained(b, ingest.DefaultConfig().Consumer, 5*time.Minute)
		b.StopTimer()
		stopProfile()
		cancel()
		wg.Wait()
		eng.Close()
		b.ReportMetric(float64(n)/d.Seconds(), "events/s")
		b.ReportMetric(float64(n/perMsg)/d.Seconds(), "msgs/s")
		ns.stop()
	}
}

// newBenchEngine is a live engine with the default rules whose alerts go
// nowhere, with lateness wide enough for a pre-filled backlog.
func newBenchEngine(b *testing.B) *detect.Engine {
	rs, err := rules.Load("")
	if err != nil {
		b.Fatal(err)
	}
	eng, err := detect.New(rs, detect.Options{Live: true, Lateness: drainLateness, Emit: func(detect.Alert) {}})
	if err != nil {
		b.Fatal(err)
	}
	return eng
}

// ceilingMode is how a ceiling consumer receives and acknowledges.
type ceilingMode int

const (
	ceilingConsume ceilingMode = iota // Consume, AckExplicit, ack each message
	ceilingFetch                      // fetch a batch, then ack each message
	ceilingAckAll                     // two fetches in flight, AckAll on each batch's last
)

// ceilingConsumer creates a durable consumer configured as Vigil's, but
// acknowledging by policy and starting at deliver.
func ceilingConsumer(b *testing.B, c *client, name string, policy jetstream.AckPolicy, deliver jetstream.DeliverPolicy) jetstream.Consumer {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := ingest.DefaultConfig()
	cons, err := c.js.CreateOrUpdateConsumer(ctx, ingest.EventsStream, jetstream.ConsumerConfig{
		Durable: name, DeliverPolicy: deliver, AckPolicy: policy,
		AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	return cons
}

// ceiling drains the stream with a durable consumer that only receives and
// acknowledges, configured as Vigil's, and returns the drain time.
func ceiling(b *testing.B, c *client, name string, mode ceilingMode) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := ingest.DefaultConfig()
	policy := jetstream.AckExplicitPolicy
	if mode == ceilingAckAll {
		policy = jetstream.AckAllPolicy
	}
	cons := ceilingConsumer(b, c, name, policy, jetstream.DeliverAllPolicy)
	if mode == ceilingConsume {
		cc, err := cons.Consume(func(m jetstream.Msg) { _ = m.Ack() }, jetstream.PullMaxMessages(cfg.FetchBatch))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		return c.drained(b, name, 5*time.Minute)
	}
	var wg sync.WaitGroup
	wg.Go(func() { fetchAck(ctx, cons, cfg, mode == ceilingAckAll) })
	d := c.drained(b, name, 5*time.Minute)
	cancel()
	wg.Wait()
	return d
}

// ceilingLive is the transport end to end: a consumer on its own connection
// to url that only receives and acknowledges, as Vigil's ceiling, while c
// publishes msgs. It returns the time from the first publish until the
// server has the consumer's acknowledgement of the last message.
func ceilingLive(b *testing.B, c *client, url string, msgs []*nats.Msg) time.Duration {
	b.Helper()
	cons := ceilingConsumer(b, connect(b, url), "ceiling-live", jetstream.AckExplicitPolicy, jetstream.DeliverNewPolicy)
	var got atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		got.Add(1)
		_ = m.Ack()
	}, jetstream.PullMaxMessages(ingest.DefaultConfig().FetchBatch))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	start := time.Now()
	c.prefill(b, len(msgs), func(i int) *nats.Msg { return msgs[i] })
	ci := c.allAckedBy(b, "ceiling-live", 5*time.Minute)
	if n := got.Load(); n != int64(len(msgs)) {
		b.Fatalf("the ceiling consumer received %d messages, want %d", n, len(msgs))
	}
	return ci.AckFloor.Last.Sub(start)
}

// fetchAck receives batches and acknowledges them until ctx is done: each
// message after its batch, or with pipelined the batch's last message while
// the next batch is already requested (JetStream then hands the messages to
// the two requests in turn, out of order: fine for counting, not for Vigil).
func fetchAck(ctx context.Context, cons jetstream.Consumer, cfg ingest.Config, pipelined bool) {
	fetch := func() jetstream.MessageBatch {
		batch, err := cons.Fetch(cfg.FetchBatch, jetstream.FetchMaxWait(cfg.FetchWait))
		if err != nil {
			return nil
		}
		return batch
	}
	var msgs []jetstream.Msg
	next := fetch()
	for next != nil && ctx.Err() == nil {
		cur := next
		if pipelined {
			next = fetch()
		}
		msgs = msgs[:0]
		for m := range cur.Messages() {
			msgs = append(msgs, m)
		}
		switch {
		case len(msgs) == 0:
		case pipelined:
			_ = msgs[len(msgs)-1].Ack()
		default:
			for _, m := range msgs {
				_ = m.Ack()
			}
		}
		if !pipelined {
			next = fetch()
		}
	}
}

// startProfile starts a CPU profile into VIGIL_E2E_CPUPROFILE, if set, and
// returns the function that stops it.
func startProfile(b *testing.B) func() {
	path := os.Getenv("VIGIL_E2E_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}
