package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/natsconn"
)

// Stream and subject names. They are part of Vigil's contract with publishers
// and operators.
const (
	EventsStream   = "VIGIL_EVENTS"
	EventsSubjects = "vigil.events.>"
	// NoDedupStream is an empty stream that EventsStream sources: a stream
	// with a source keeps no duplicate window of its own (duplicate_window
	// 0), so JetStream does not drop a message because another service's
	// subject carried its Nats-Msg-Id; the consumer de-duplicates per
	// service instead (see dedup). Nothing can be stored in it.
	NoDedupStream      = "VIGIL_EVENTS_NODEDUP"
	noDedupSubject     = "vigil.internal.nodedup"
	SubjectPrefix      = "vigil.events."
	DeadLetterStream   = "VIGIL_DEADLETTER"
	DeadLetterSubject  = "vigil.deadletter.events"
	HeaderRejectReason = "Vigil-Reject-Reason"
	HeaderRejectCode   = "Vigil-Reject-Code"
	HeaderSubject      = "Vigil-Subject"
	// HeaderSequence is the rejected message's sequence in EventsStream,
	// where the whole message stays for the stream's max_age.
	HeaderSequence = "Vigil-Stream-Sequence"
	// HeaderRejectSize is a too_large line's size in bytes, set when the
	// dead letter keeps only its first DeadLetterMaxBytes (cut at the
	// start of a UTF-8 character).
	HeaderRejectSize = "Vigil-Reject-Size"
	// HeaderRejectedLines and HeaderOmittedLines are set on the record
	// that ends the dead letters of a message with more than
	// MaxDeadLetters rejected lines: how many it had, and how many of them
	// were not stored.
	HeaderRejectedLines = "Vigil-Rejected-Lines"
	HeaderOmittedLines  = "Vigil-Omitted-Lines"
	// RejectCodeOmitted is that record's HeaderRejectCode; it is not a
	// rejection reason.
	RejectCodeOmitted = "omitted"
)

// MaxDeadLetters is how many rejected lines of one message are stored as
// dead letters; the rest are counted (vigil_events_rejected_total) and
// summed up in one more record, so that one message of garbage costs a
// bounded storage, memory and time. The whole message stays in
// EventsStream.
const MaxDeadLetters = 100

// DeadLetterMaxBytes is how much of a too_large line a dead letter keeps:
// storing it whole would let a sender double the storage its garbage
// costs. A line rejected for any other reason is kept whole (it is at most
// ingest.max_event_bytes).
const DeadLetterMaxBytes = 1 << 10

// minServerWindow is the shortest duplicate window JetStream accepts.
const minServerWindow = 100 * time.Millisecond

// EnsureStreams creates or updates the events and dead-letter streams.
// The events stream keeps no duplicate window (see NoDedupStream); a server
// that keeps one all the same (older nats-server versions default a
// sourcing stream's window to 2 minutes) is given the shortest it accepts,
// and bind warns about it.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) error {
	nodedup := jetstream.StreamConfig{
		Name:        NoDedupStream,
		Description: "Empty: VIGIL_EVENTS sources it so that JetStream keeps no stream-wide duplicate window; Vigil de-duplicates per service",
		Subjects:    []string{noDedupSubject},
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     1, // with MaxMsgSize, nothing fits: see below
		MaxMsgSize:  1,
		Replicas:    replicas,
	}
	if _, err := natsconn.EnsureStream(ctx, js, nodedup); err != nil {
		return fmt.Errorf("create or update stream %s: %w", NoDedupStream, err)
	}
	events := jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "Vigil request events published by services",
		Subjects:    []string{EventsSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.StreamMaxAge,
		MaxBytes:    cfg.StreamMaxBytes,
		Sources:     []*jetstream.StreamSource{{Name: NoDedupStream}},
		Replicas:    replicas,
	}
	s, err := natsconn.EnsureStream(ctx, js, events)
	if err != nil {
		return fmt.Errorf("create or update stream %s: %w", EventsStream, err)
	}
	if s.CachedInfo().Config.Duplicates > minServerWindow {
		events.Duplicates = minServerWindow
		if _, err := js.UpdateStream(ctx, events); err != nil {
			return fmt.Errorf("update stream %s: %w", EventsStream, err)
		}
	}
	dead := jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Vigil events rejected by validation, with the reason in a header",
		Subjects:    []string{DeadLetterSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.DeadLetterMaxAge,
		MaxBytes:    cfg.DeadLetterMaxBytes,
		Replicas:    replicas,
	}
	if _, err := natsconn.EnsureStream(ctx, js, dead); err != nil {
		return fmt.Errorf("create or update stream %s: %w", DeadLetterStream, err)
	}
	return nil
}

// subjectService is the service a subject names: everything after
// vigil.events., dots included, which the events' service field must equal.
func subjectService(subject string) string { return strings.TrimPrefix(subject, SubjectPrefix) }

// consumerConfig is the durable consumer Vigil reads the events stream
// with. Every message is acknowledged on its own (AckExplicit), after its
// events were applied. AckAll (one acknowledgement per batch) measured about
// a third faster on two cores, but it acknowledges any earlier message too,
// including one the server delivered and the connection lost on its way
// (NATS going away mid-batch): that message would never be delivered again.
// With AckExplicit it comes again after ack_wait.
func consumerConfig(cfg Config, fo *Failover) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "Vigil ingest",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		MaxDeliver:    -1,
	}
	if fo != nil {
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{PriorityGroup}
		cc.PinnedTTL = fo.After
		// Messages delivered to an active member that crashes come again
		// only after ack_wait, and JetStream pins the next member only when
		// it delivers something: with nothing else pending (an attack's
		// events all went to the member that died), the takeover would wait
		// for ack_wait rather than failover_after.
		cc.AckWait = min(cc.AckWait, fo.After)
	}
	return cc
}

// bind declares the streams and the durable consumer.
func (c *Consumer) bind(ctx context.Context) (jetstream.Consumer, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := EnsureStreams(sctx, c.js, c.cfg, c.repl); err != nil {
		return nil, err
	}
	stream, err := c.js.Stream(sctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	// A stream deleted and created again numbers its messages from 1: what
	// was settled or replayed in the old one says nothing of the new one.
	if made := stream.CachedInfo().Created.UnixNano(); made != c.streamMade.Load() {
		if c.streamMade.Load() != 0 {
			c.settled.reset()
			c.applied.reset()
			c.dedup.Load().reset()
			c.lastApplied.Store(0)
		}
		c.streamMade.Store(made)
	}
	cons, err := c.js.CreateOrUpdateConsumer(sctx, EventsStream, consumerConfig(c.cfg, c.failover))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.cfg.Consumer, err)
	}
	if c.failover != nil && cons.CachedInfo().Config.PriorityPolicy != jetstream.PriorityPolicyPinned {
		return nil, fmt.Errorf("cluster.enabled needs pinned priority groups, which this NATS server ignored (nats-server 2.11 or later has them): upgrade NATS, or set cluster.enabled: false")
	}
	c.consMu.Lock()
	c.cons = cons
	c.consMu.Unlock()
	c.bound.Store(true)
	if w := stream.CachedInfo().Config.Duplicates; w > 0 && !c.warnedWindow {
		c.warnedWindow = true
		c.log.Warn("this NATS server keeps a duplicate window on the events stream: an event can be dropped because another service's message carried the same Nats-Msg-Id within it; upgrade nats-server to let Vigil de-duplicate per service",
			"stream", EventsStream, "window", w)
	}
	c.log.Info("event consumer bound", "stream", EventsStream, "consumer", c.cfg.Consumer)
	return cons, nil
}

// pollEvery is how often pollInfo asks the server for the consumer's
// state.
const pollEvery = time.Second

// pollInfo refreshes the pending gauges from the consumer's info, and
// tells progress when the server has nothing left for Vigil.
func (c *Consumer) pollInfo(ctx context.Context) {
	t, tick := c.clock.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		c.poll(ctx)
		c.polls.Add(1)
	}
}

// poll is one round of pollInfo.
func (c *Consumer) poll(ctx context.Context) {
	c.consMu.Lock()
	cons := c.cons
	c.consMu.Unlock()
	if cons == nil || !c.bound.Load() {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	info, err := cons.Info(ictx)
	cancel()
	if err != nil {
		return
	}
	c.pending.Set(float64(info.NumPending))
	c.lastDelivered.Store(info.Delivered.Stream)
	c.ackPending.Set(float64(info.NumAckPending))
	// Messages awaiting acknowledgement that this consumer applied already
	// (replayed before it took over from a member that died with them, or
	// before a restart) come again only after ack_wait; they hold nothing
	// back from the engine, so detection is caught up without them.
	unacked := info.NumAckPending == 0 || covers(info.AckFloor.Stream+1, info.Delivered.Stream, &c.applied, &c.settled)
	if info.NumPending == 0 && unacked {
		c.progress.serverIdle(c.clock.Now())
	}
	// A standby is not delivered anything by design.
	if c.progress.stalled(c.clock.Now(), info.NumPending, uint64(info.NumAckPending)) && (c.failover == nil || c.fo.held() != "") {
		select {
		case c.stall <- struct{}{}:
		default:
		}
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

func (c *Consumer) registerGauges(reg prometheus.Registerer) {
	c.pending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_consumer_pending_messages", Help: "Messages in the event stream not yet delivered to Vigil.",
	})
	c.ackPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_ingest_ack_pending_messages", Help: "Messages delivered to Vigil and not yet acknowledged.",
	})
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_nats_connected", Help: "1 while the NATS connection is up.",
	}, func() float64 {
		if c.nc.IsConnected() {
			return 1
		}
		return 0
	})
	c.redelivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_ingest_redelivered_messages_total",
		Help: "Messages delivered again after Vigil had applied and acknowledged them (the acknowledgement was lost); acknowledged again, not applied.",
	})
	c.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_ingest_duplicate_messages_total",
		Help: "Messages dropped because their service published a message with the same Nats-Msg-Id within ingest.duplicate_window before.",
	})
	ids := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ingest_dedup_ids", Help: "Message ids remembered to drop duplicates within ingest.duplicate_window.",
	}, func() float64 { return float64(c.dedup.Load().size()) })
	maxIDs := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_ingest_dedup_ids_max", Help: "The most message ids remembered; past it the oldest are forgotten early.",
	})
	maxIDs.Set(MaxDedupIDs)
	reg.MustRegister(c.pending, c.ackPending, connected, c.redelivered, c.duplicates, ids, maxIDs)
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
