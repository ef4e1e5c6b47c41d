// Package ingest consumes Vigil's event stream from NATS JetStream: it
// declares the streams, pulls batches through a durable consumer, decodes and
// validates every event, applies the valid ones (metrics, then the Sink, such
// as the detection engine) and acknowledges a message only after all of its
// events were applied. Rejected events are counted by reason and copied with
// the reason to the dead-letter stream; a bad message never stops the rest.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
)

// Sink receives every valid event after it was counted. The event is reused
// after Process returns; a Sink copies what it keeps.
type Sink interface {
	Process(ev *event.Event)
}

// Options are the consumer's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Sink       Sink             // optional
	Now        func() time.Time // wall clock; time.Now when nil
	Replicas   int              // stream replicas; 1 when zero
}

// Consumer pulls events from JetStream and applies them. Create it with New,
// then call Run once.
type Consumer struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	sink    atomic.Pointer[Sink]
	now     func() time.Time
	metrics *Metrics
	dec     *event.Decoder
	repl    int

	batchMu      sync.Mutex // held while a batch is processed; see Paused
	bound        atomic.Bool
	pending      prometheus.Gauge
	ackPending   prometheus.Gauge
	cons         jetstream.Consumer
	consMu       sync.Mutex
	deadPending  int
	batchApplied int
	curSubject   string
}

// New creates a consumer. It does not touch NATS until Run.
func New(cfg Config, nc *nats.Conn, opts Options) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &Consumer{
		cfg: cfg, nc: nc, js: js,
		log: opts.Logger, now: opts.Now, repl: max(opts.Replicas, 1),
		dec: event.NewDecoder(cfg.Limits()),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if opts.Sink != nil {
		c.SetSink(opts.Sink)
	}
	if c.now == nil {
		c.now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c.metrics = NewMetrics(reg, cfg)
	c.pending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_consumer_pending_messages", Help: "Messages in the event stream not yet delivered to Vigil.",
	})
	c.ackPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_ingest_ack_pending_messages", Help: "Messages delivered to Vigil and not yet acknowledged.",
	})
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_nats_connected", Help: "1 while the NATS connection is up.",
	}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	})
	reg.MustRegister(c.pending, c.ackPending, connected)
	return c, nil
}

// JetStream returns the JetStream context the consumer uses.
func (c *Consumer) JetStream() jetstream.JetStream { return c.js }

// Ready returns nil while NATS is connected and the durable consumer is bound,
// or an error saying which is not.
func (c *Consumer) Ready() error {
	if !c.nc.IsConnected() {
		return fmt.Errorf("nats %s", strings.ToLower(c.nc.Status().String()))
	}
	if !c.bound.Load() {
		return errors.New("event consumer not bound")
	}
	return nil
}

// Run consumes until ctx is done. The batch in progress is finished and
// acknowledged before Run returns. Errors from NATS are retried with backoff;
// Run returns only ctx's error.
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.pollInfo(ctx) })

	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		cons, err := c.bind(ctx)
		if err == nil {
			err = c.consume(ctx, cons)
		}
		c.bound.Store(false)
		if ctx.Err() != nil {
			break
		}
		c.log.Warn("event consumer interrupted; retrying", "err", err, "retry_in", delay)
		if !sleepCtx(ctx, delay) {
			break
		}
		delay = min(delay*2, 5*time.Second)
	}
	return ctx.Err()
}

// bind declares the streams and the durable consumer.
func (c *Consumer) bind(ctx context.Context) (jetstream.Consumer, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := EnsureStreams(sctx, c.js, c.cfg, c.repl); err != nil {
		return nil, err
	}
	cons, err := c.js.CreateOrUpdateConsumer(sctx, EventsStream, consumerConfig(c.cfg))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.cfg.Consumer, err)
	}
	c.consMu.Lock()
	c.cons = cons
	c.consMu.Unlock()
	c.bound.Store(true)
	c.log.Info("event consumer bound", "stream", EventsStream, "consumer", c.cfg.Consumer)
	return cons, nil
}

// consume pulls batches until ctx is done or a pull fails.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		batch, err := cons.Fetch(c.cfg.FetchBatch, jetstream.FetchMaxWait(c.cfg.FetchWait))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		n, err := c.processBatch(batch)
		if err != nil {
			return err
		}
		if n > 0 {
			c.metrics.Batch()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
	}
	return nil
}

// SetSink replaces the sink that receives valid events.
func (c *Consumer) SetSink(s Sink) { c.sink.Store(&s) }

// Paused runs fn while no batch is being processed, so that fn can swap the
// sink consistently (e.g. on a rule reload).
func (c *Consumer) Paused(fn func()) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	fn()
}

// processBatch applies every message of batch, then acknowledges them.
func (c *Consumer) processBatch(batch jetstream.MessageBatch) (int, error) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	var sink Sink
	if p := c.sink.Load(); p != nil {
		sink = *p
	}
	var msgs []jetstream.Msg
	for msg := range batch.Messages() {
		c.processMessage(msg, sink)
		msgs = append(msgs, msg)
	}
	if c.deadPending > 0 {
		if err := c.waitDeadLetters(); err != nil {
			// Not acked: JetStream redelivers them after ack_wait, so no
			// rejected event is lost on its way to the dead-letter stream.
			return len(msgs), err
		}
	}
	for _, msg := range msgs {
		if err := msg.Ack(); err != nil {
			return len(msgs), fmt.Errorf("ack: %w", err)
		}
	}
	return len(msgs), nil
}

func (c *Consumer) processMessage(msg jetstream.Msg, sink Sink) {
	subject := msg.Subject()
	service := strings.TrimPrefix(subject, SubjectPrefix)
	if i := strings.LastIndexByte(service, '.'); i >= 0 {
		service = service[i+1:]
	}
	now := c.now()
	c.curSubject = subject
	c.dec.DecodeMessage(msg.Data(), service, now, func(ev *event.Event) {
		c.metrics.Observe(ev, now)
		if sink != nil {
			sink.Process(ev)
		}
	}, c.reject)
}

func (c *Consumer) reject(rerr *event.RejectError, line []byte) {
	c.metrics.Rejected(rerr.Reason)
	m := nats.NewMsg(DeadLetterSubject)
	m.Header.Set(HeaderRejectCode, string(rerr.Reason))
	m.Header.Set(HeaderRejectReason, rerr.Error())
	m.Header.Set(HeaderSubject, c.curSubject)
	m.Data = append([]byte(nil), line...)
	if _, err := c.js.PublishMsgAsync(m); err != nil {
		c.log.Error("dead-letter publish failed", "err", err, "reason", string(rerr.Reason))
		return
	}
	c.deadPending++
}

// waitDeadLetters waits until JetStream stored every dead letter published
// for the current batch.
func (c *Consumer) waitDeadLetters() error {
	n := c.deadPending
	c.deadPending = 0
	select {
	case <-c.js.PublishAsyncComplete():
		for range n {
			c.metrics.DeadLettered()
		}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("dead-letter stream did not confirm within 10s")
	}
}

// pollInfo refreshes the pending gauges from the consumer's info.
func (c *Consumer) pollInfo(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.consMu.Lock()
		cons := c.cons
		c.consMu.Unlock()
		if cons == nil || !c.bound.Load() {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil {
			continue
		}
		c.pending.Set(float64(info.NumPending))
		c.ackPending.Set(float64(info.NumAckPending))
	}
}

// Info returns the stream and consumer state, for the status endpoint.
func (c *Consumer) Info(ctx context.Context) (*jetstream.StreamInfo, *jetstream.ConsumerInfo, error) {
	s, err := c.js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, nil, err
	}
	si, err := s.Info(ctx)
	if err != nil {
		return nil, nil, err
	}
	ci, err := s.Consumer(ctx, c.cfg.Consumer)
	if err != nil {
		return si, nil, err
	}
	cinfo, err := ci.Info(ctx)
	return si, cinfo, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
