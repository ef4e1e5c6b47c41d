// Package ingest consumes Vigil's event stream from NATS JetStream: it
// declares the streams, pulls messages through a durable consumer, decodes and
// validates every event, applies the valid ones (metrics, then the Sink, such
// as the detection engine) and acknowledges a message only after all of its
// events were applied. Rejected events are counted by reason and copied with
// the reason to the dead-letter stream; a bad message never stops the rest.
//
// Consumption is a pipeline of three goroutines, so that decoding and
// detection use two cores and neither waits for JetStream: the first
// receives messages (the client keeps fetch_batch of them, and at most 32
// MiB, requested ahead) and decodes each as it arrives, handing the events
// on in chunks; the second applies them to the Sink, in order; the third
// settles the applied chunks' messages (waits until their dead letters are
// stored, then acknowledges them). docs/performance.md has the measurements
// behind it.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/clock"
)

// Sink receives every valid event after it was counted. The event is reused
// after Process returns, and its strings point into the message it came
// in: a Sink copies what it keeps, and clones (strings.Clone) the strings
// it keeps for long, or each would keep its whole message in memory.
type Sink interface {
	Process(ev *event.Event)
}

// Options are the consumer's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Sink       Sink // optional
	// Clock drives the consumer's timing: the wall clock read per message,
	// the server polls and the grace after reconnecting (see CaughtUp), and
	// the retries after a failure; clock.Real when nil. Its safety
	// timeouts against a stuck server and the flush of a chunk (flushDelay)
	// use the time package.
	Clock    clock.Clock
	Replicas int // stream replicas; 1 when zero
	// Failover, when set, shares the durable consumer with other
	// instances, one active at a time (see Failover).
	Failover *Failover
}

// Pipeline sizes: events per chunk handed from decoding to applying, and
// chunks waiting between the two. A chunk closes at the first message
// boundary once it holds chunkEvents events and rejected lines, chunkBytes
// of messages, or fetch_batch messages, so with the client's fetch_batch
// messages and settleQueue they bound the memory in flight.
const (
	chunkEvents = 1024
	chunkBytes  = 4 << 20
	chunkQueue  = 2
	// flushDelay is the longest a decoded event waits for more to join its
	// chunk: the added detection latency when traffic is light.
	flushDelay = time.Millisecond
)

// Consumer pulls events from JetStream and applies them. Create it with New,
// then call Run once.
type Consumer struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	sink    atomic.Pointer[Sink]
	clock   clock.Clock
	metrics *Metrics
	rd      *reader // under batchMu
	repl    int
	bytes   struct{ pull, replay int } // livePullBytes and replayFetchBytes, but in tests

	batchMu       sync.Mutex     // held while a message is decoded; see Paused
	inflight      sync.WaitGroup // chunks decoded and not yet applied
	bound         atomic.Bool
	progress      progress              // see CaughtUp
	settled       seqSet                // messages applied, acknowledged and counted; see handle
	applied       seqSet                // messages applied but not acknowledged (by Rebuild, or before settling failed); see decodeMessage
	pipelined     seqMap                // messages received and not yet settled or handed back; see handle
	dedup         atomic.Pointer[dedup] // message ids of the duplicate window; see handle
	streamMade    atomic.Int64          // when the events stream was created, Unix ns; see bind
	warnedWindow  bool                  // bind warned that the server keeps a duplicate window
	polls         atomic.Int64          // poll rounds done; see pollInfo
	pending       prometheus.Gauge
	ackPending    prometheus.Gauge
	redelivered   prometheus.Counter
	duplicates    prometheus.Counter
	cons          jetstream.Consumer
	consMu        sync.Mutex
	stall         chan struct{} // poll found delivery stalled; see progress.stalled
	failover      *Failover     // nil: this instance alone consumes
	fo            failoverState // with failover: the pin held
	lastApplied   atomic.Uint64 // stream sequence of the last message applied live
	lastDelivered atomic.Uint64 // the consumer's delivered sequence at the last poll

	// Owned by the decoding side (under batchMu).
	out         chan<- *chunk // to the applier; nil while not consuming
	cur         *chunk        // being filled
	flush       *time.Timer   // hands cur on when no message follows soon
	curSubject  string
	curSeq      uint64
	curNow      time.Time
	curRejected int // rejected lines of the message so far
	rejectFn    func(*event.RejectError, []byte)
	free        chan *chunk // applied chunks, for reuse

	beforeSettle func(seqs []uint64) // tests only: see export_test.go
}

// chunk is a run of messages on their way to the Sink: their decoded
// events, and their dead letters; the applier settles the messages once the
// events are applied and the dead letters stored. Its events and rejected
// lines are counted in metrics once its messages are acknowledged, so that
// a message applied and then lost to a crash before its acknowledgement
// is counted once, when JetStream delivers it again.
type chunk struct {
	events   []event.Event        // to apply to the Sink, then count
	tally    []event.Event        // applied before (see Consumer.applied): only to count
	rejected map[event.Reason]int // rejected lines, to count
	msgs     []jetstream.Msg
	seqs     []uint64 // msgs' stream sequences
	dead     []jetstream.PubAckFuture
	deadErr  error     // a dead letter could not be published
	skip     bool      // not applied, because an earlier chunk failed
	bytes    int       // of msgs' data
	at       time.Time // when the events were applied, for the delay histogram
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
		log: opts.Logger, clock: clock.Or(opts.Clock), repl: max(opts.Replicas, 1),
		failover: opts.Failover,
		rd:       newReader(cfg.Limits()),
		free:     make(chan *chunk, chunkQueue+settleQueue+3),
		stall:    make(chan struct{}, 1),
	}
	c.progress.grace = reconnectGrace
	c.bytes.pull, c.bytes.replay = livePullBytes, replayFetchBytes
	c.dedup.Store(newDedup(cfg.DuplicateWindow, MaxDedupIDs))
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.rejectFn = c.reject // bound once, not per message
	if opts.Sink != nil {
		c.SetSink(opts.Sink)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c.metrics = NewMetrics(reg, cfg)
	c.registerGauges(reg)
	return c, nil
}

// Run consumes until ctx is done. Messages already received are finished
// and acknowledged before Run returns. Errors from NATS are retried with backoff;
// Run returns only ctx's error.
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.pollInfo(ctx) })
	wg.Go(func() { c.watchConnection(ctx) })

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
		if !c.sleep(ctx, delay) {
			break
		}
		delay = min(delay*2, 5*time.Second)
	}
	return ctx.Err()
}

// CaughtUp reports whether every event stored in the stream so far has
// been applied to the sink: the consumer is bound and connected, and the
// server, asked every second, last reported nothing undelivered and nothing
// unacknowledged, with nothing received since. For five seconds after
// (re)connecting it is false whatever the server says, while publishers
// that held events reconnect. A live detection engine should let the wall
// clock move its watermark only when caught up; while Vigil works through a
// backlog, or events flow, event time rules.
func (c *Consumer) CaughtUp() bool {
	return c.bound.Load() && c.nc.IsConnected() && c.progress.caughtUp()
}

// watchConnection marks progress interrupted whenever the connection to
// NATS is lost or comes back (the grace for publishers starts then), until
// ctx is done.
func (c *Consumer) watchConnection(ctx context.Context) {
	ch := c.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED, nats.CLOSED)
	defer c.nc.RemoveStatusListener(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			c.progress.interrupt(c.clock.Now())
		}
	}
}

// SetSink replaces the sink that receives valid events.
func (c *Consumer) SetSink(s Sink) { c.sink.Store(&s) }

// Paused runs fn while no message is being decoded or applied, so that fn
// can swap the sink consistently (e.g. on a rule reload).
func (c *Consumer) Paused(fn func()) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	c.sendLocked()
	c.inflight.Wait()
	fn()
}

// consume receives messages until ctx is done or the consumer fails. The
// client keeps up to fetch_batch messages requested ahead, in pull requests
// of at most pullBytes refilled as they are used (so their order is the
// stream's); the handler decodes each as it arrives and hands the events on
// in chunks to the applier, which applies them, then settles their
// messages. When ctx is done, messages already received are processed and
// settled.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) error {
	ap := newApplier(c)
	c.batchMu.Lock()
	c.out, c.cur = ap.in, c.newChunk()
	c.flush = time.AfterFunc(time.Hour, c.flushIdle)
	c.flush.Stop()
	c.batchMu.Unlock()
	c.progress.reset(c.clock.Now())
	select {
	case <-c.stall: // a stall of the last binding
	default:
	}

	fatal := make(chan error, 1)
	expiry := max(c.cfg.FetchWait, time.Second)
	var group []jetstream.PullConsumeOpt
	if c.failover != nil {
		c.fo.mu.Lock()
		c.fo.ctx = ctx
		c.fo.mu.Unlock()
		expiry = c.failover.PullExpiry
		group = append(group, jetstream.PullPriorityGroup(PriorityGroup))
		// A new consumer handle holds no pin: whatever this instance held
		// is gone with the last one. An instance stopping on purpose (a
		// rolling update) hands the pin on at once, after settling what
		// it received, rather than making the others wait for After.
		defer func() {
			pin := c.fo.held()
			if pin != "" && c.nc.IsConnected() {
				c.unpin(context.Background())
			}
			c.lostPin(pin)
		}()
	}
	cc, err := cons.Consume(c.handle, append(group, jetstream.PullMaxMessagesWithBytesLimit(c.cfg.FetchBatch, c.pullBytes()),
		jetstream.PullExpiry(expiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case fatal <- err:
				default:
				}
				return
			}
			if c.failover != nil && isPinMismatch(err) {
				// The refusal is of the pin held when it came; by the time
				// the goroutine runs, the server may have pinned this
				// instance again, which lostPin leaves alone.
				c.log.Info("another instance is pinned on the events consumer", "consumer", c.cfg.Consumer)
				pin := c.fo.held()
				go c.lostPin(pin)
				return
			}
			c.log.Debug("event consumer pull interrupted", "err", err)
		}))...)
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-fatal:
		case <-ap.failed:
		case <-cc.Closed():
			err = errors.New("the NATS client stopped consuming; binding again")
		case <-c.stall:
			err = fmt.Errorf("JetStream holds messages for Vigil but delivered none for %s; binding again", stallAfter)
		}
		stopConsuming(cc, c.nc)
	} else {
		err = fmt.Errorf("consume: %w", err)
	}
	c.batchMu.Lock()
	c.flush.Stop()
	c.sendLocked()
	c.out = nil
	c.batchMu.Unlock()
	return errors.Join(err, ap.close())
}

// nats-server closes a client's connection as a slow consumer when more
// than its max_pending (64 MiB by default) waits to be written to it. A
// member that stops reading for a moment (two busy cores, a GC pause)
// leaves waiting everything it has asked for and not yet received, so what
// it asks for is bounded in bytes, by the server: the live pull asks for at
// most livePullBytes per request, and at most two requests are unanswered
// at once (the client asks again when half of fetch_batch is handled), so
// 32 MiB; a replay (a takeover's catch-up, a standby's following, a
// rebuild) asks for at most replayFetchBytes per fetch, one fetch at a
// time. A member taking over a backlog, whose catch-up fetches while its
// first live messages arrive, has at most 40 MiB on their way to it.
// docs/performance.md ("Cluster throughput") has the measurements.
const (
	livePullBytes    = 16 << 20
	replayFetchBytes = 8 << 20
)

// pullBytes is what one live pull request asks for at most: livePullBytes,
// or two of the largest messages the server takes, so that one always fits
// (the byte bound of a request stops before a message that does not fit).
func (c *Consumer) pullBytes() int { return max(c.bytes.pull, 2*int(c.nc.MaxPayload())) }

// replayBytes is pullBytes for one fetch of a replay.
func (c *Consumer) replayBytes() int { return max(c.bytes.replay, 2*int(c.nc.MaxPayload())) }

// stopConsuming ends cc. While NATS is connected, the messages the client
// holds are still decoded and applied (Drain); while it is not, draining
// would wait for a server that is gone, so they are dropped unacknowledged
// (JetStream delivers them again after ack_wait). Either way it waits at
// most 5s.
func stopConsuming(cc jetstream.ConsumeContext, nc *nats.Conn) {
	if nc.IsConnected() {
		cc.Drain()
	} else {
		cc.Stop()
	}
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
	}
}

// handle decodes one message into the current chunk, and hands the chunk
// on when it is full.
func (c *Consumer) handle(msg jetstream.Msg) {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	if c.out == nil {
		_ = msg.Nak() // consuming ended: let JetStream deliver it again
		return
	}
	if c.failover != nil && !c.checkPin(msg) {
		return
	}
	seq, at := stored(msg)
	c.progress.receive(c.clock.Now())
	if c.settled.has(seq) {
		// Applied and acknowledged already, but the acknowledgement was
		// lost (NATS went away, or a restarted server had not stored it).
		c.redelivered.Inc()
		_ = msg.Ack()
		c.progress.apply(1)
		return
	}
	if seq > 0 && c.pipelined.has(seq) {
		// Delivered again while its first delivery is still on its way
		// through the pipeline: ack_wait passed during a long pause (a
		// takeover's catch-up, a reload's swap, a GC pause). The first
		// is acknowledged when settled; this copy is neither applied nor
		// counted.
		c.progress.apply(1)
		return
	}
	if seq > 0 && c.dedup.Load().duplicate(msg.Subject(), msgID(msg), seq, at) {
		// A retry of a message this service published before.
		c.duplicates.Inc()
		_ = msg.Ack()
		c.progress.apply(1)
		return
	}
	if len(c.cur.msgs) == 0 {
		c.flush.Reset(flushDelay)
	}
	c.decodeMessage(msg, seq, at)
	c.pipelined.add(seq)
	c.cur.msgs = append(c.cur.msgs, msg)
	c.cur.seqs = append(c.cur.seqs, seq)
	c.cur.bytes += len(msg.Data())
	full := len(c.cur.events)+len(c.cur.tally)+len(c.cur.dead) >= chunkEvents || c.cur.bytes >= chunkBytes
	if full || len(c.cur.msgs) >= c.cfg.FetchBatch {
		c.sendLocked()
	}
}

// flushIdle hands the current chunk on when no message followed it soon.
func (c *Consumer) flushIdle() {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	c.sendLocked()
}

// sendLocked hands the current chunk to the applier, if it holds anything.
// batchMu is held.
func (c *Consumer) sendLocked() {
	ch := c.cur
	if c.out == nil || ch == nil || len(ch.msgs) == 0 {
		return
	}
	c.flush.Stop()
	c.inflight.Add(1)
	c.out <- ch
	c.cur = c.newChunk()
}

// recycle keeps an applied chunk for reuse.
func (c *Consumer) recycle(ch *chunk) {
	if cap(ch.events) > 2*chunkEvents {
		return // grown by a message of many small events: let it go
	}
	clear(ch.events) // do not pin the events' strings
	clear(ch.tally)
	clear(ch.msgs)
	clear(ch.rejected)
	ch.events, ch.tally, ch.msgs, ch.seqs = ch.events[:0], ch.tally[:0], ch.msgs[:0], ch.seqs[:0]
	ch.dead, ch.deadErr, ch.skip, ch.bytes, ch.at = nil, nil, false, 0, time.Time{}
	select {
	case c.free <- ch:
	default:
	}
}

func (c *Consumer) newChunk() *chunk {
	select {
	case ch := <-c.free:
		return ch
	default:
		return &chunk{events: make([]event.Event, 0, chunkEvents), rejected: map[event.Reason]int{}}
	}
}

// decodeMessage decodes msg, with stream sequence seq, stored by JetStream
// at `at`, into the current chunk, as every replay of the stream decodes it
// (see reader).
func (c *Consumer) decodeMessage(msg jetstream.Msg, seq uint64, at time.Time) {
	subject := msg.Subject()
	c.curNow, c.curSubject, c.curSeq = c.clock.Now(), subject, seq
	if at.IsZero() {
		at = c.curNow
	}
	if c.isWake(msg) {
		return // no events, and no malformed message either
	}
	// Applied already but not acknowledged, by Rebuild or before its
	// settling failed: count it, but do not apply it twice. Its rejected
	// lines are dead-lettered again; their Nats-Msg-Id stores each once.
	to := &c.cur.events
	if c.applied.has(seq) {
		to = &c.cur.tally
	}
	c.curRejected = 0
	c.rd.read(msg.Data(), subject, at, to, c.rejectFn)
	if c.curRejected > MaxDeadLetters {
		c.deadLetterRest()
	}
}

// stored returns the stream sequence of msg and when JetStream stored it;
// zero when msg carries no JetStream metadata.
func stored(msg jetstream.Msg) (uint64, time.Time) {
	meta, err := msg.Metadata()
	if err != nil {
		return 0, time.Time{}
	}
	return meta.Sequence.Stream, meta.Timestamp
}

// sleep waits d on the consumer's clock; it returns false when ctx ended
// first.
func (c *Consumer) sleep(ctx context.Context, d time.Duration) bool {
	t, ch := c.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-ch:
		return true
	}
}
