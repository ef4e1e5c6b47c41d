package emit

import (
	"errors"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DropReason says why an event was not published. It is the value of the
// reason label of vigil_emit_events_dropped_total.
type DropReason string

// Drop reasons.
const (
	// DropBufferFull: Emit found the buffer full (NATS slow or down).
	DropBufferFull DropReason = "buffer_full"
	// DropClosed: Emit was called after Close, or Close's deadline passed
	// before the event was acknowledged.
	DropClosed DropReason = "closed"
	// DropInvalid: no valid service name (it names the subject) or the
	// request id is not 1-128 printable characters.
	DropInvalid DropReason = "invalid"
	// DropTooLarge: the encoded event is larger than the max event size.
	DropTooLarge DropReason = "too_large"
	// DropRejected: JetStream refused the message with an error that a retry
	// cannot fix (for example the stream's size limits).
	DropRejected DropReason = "rejected"
)

var dropReasons = [...]DropReason{DropBufferFull, DropClosed, DropInvalid, DropTooLarge, DropRejected}

type dropIndex int

const (
	dropBufferFull dropIndex = iota
	dropClosed
	dropInvalid
	dropTooLarge
	dropRejected
)

// publishErrors are the values of the error label of
// vigil_emit_publish_errors_total, one per failed publish attempt.
var publishErrors = [...]string{"timeout", "disconnected", "no_stream", "unavailable", "client_buffer", "conn_closed", "rejected", "other"}

type errIndex int

const (
	errTimeout errIndex = iota
	errDisconnected
	errNoStream
	errUnavailable
	errClientBuffer
	errConnClosed
	errRejected
	errOther
)

// classify names a publish error and says whether sending again may succeed.
// Every error except a definite refusal by JetStream is retried: messages
// carry Nats-Msg-Id, so a message that was stored after all is not applied
// twice.
func classify(err error) (errIndex, bool) {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return errTimeout, true
	case errors.Is(err, nats.ErrDisconnected):
		return errDisconnected, true
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return errNoStream, true
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		return errClientBuffer, true
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, jetstream.ErrJetStreamPublisherClosed):
		return errConnClosed, true
	case errors.As(err, &apiErr):
		// 429: the stream's queue of messages waiting to be stored is full
		// (nats-server's stream ingest limit); it drains in moments.
		if apiErr.Code == 503 || apiErr.Code == 408 || apiErr.Code == 429 {
			return errUnavailable, true
		}
		return errRejected, false
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return errRejected, false
	default:
		return errOther, true
	}
}

// counters are the Emitter's running totals, read by the collector and by
// Stats.
type counters struct {
	emitted   atomic.Uint64
	published atomic.Uint64
	messages  atomic.Uint64
	dropped   [len(dropReasons)]atomic.Uint64
	pubErrors [len(publishErrors)]atomic.Uint64
}

func (c *counters) drop(i dropIndex, n int) { c.dropped[i].Add(uint64(n)) }

// collector exposes counters and gauges as vigil_emit_* metrics.
type collector struct {
	c         *counters
	buffered  func() int
	capacity  int
	inflight  func() int
	batchSize prometheus.Histogram

	emittedDesc, publishedDesc, messagesDesc, droppedDesc, errorsDesc *prometheus.Desc
	bufferDesc, capacityDesc, inflightDesc                            *prometheus.Desc
}

func newCollector(c *counters, capacity int, buffered, inflight func() int) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("vigil", "emit", name), help, labels, nil)
	}
	return &collector{
		c: c, buffered: buffered, capacity: capacity, inflight: inflight,
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "vigil", Subsystem: "emit", Name: "batch_events",
			Help:    "Events per published message.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		emittedDesc:   desc("events_emitted_total", "Events handed to Emit."),
		publishedDesc: desc("events_published_total", "Events acknowledged by JetStream."),
		messagesDesc:  desc("messages_published_total", "Messages acknowledged by JetStream."),
		droppedDesc:   desc("events_dropped_total", "Events not published, by reason.", "reason"),
		errorsDesc:    desc("publish_errors_total", "Failed publish attempts, by error; most are retried.", "error"),
		bufferDesc:    desc("buffer_events", "Events waiting in the buffer."),
		capacityDesc:  desc("buffer_capacity_events", "Size of the event buffer."),
		inflightDesc:  desc("inflight_messages", "Messages built but not yet acknowledged."),
	}
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.emittedDesc, m.publishedDesc, m.messagesDesc, m.droppedDesc,
		m.errorsDesc, m.bufferDesc, m.capacityDesc, m.inflightDesc} {
		ch <- d
	}
	m.batchSize.Describe(ch)
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(m.emittedDesc, m.c.emitted.Load())
	counter(m.publishedDesc, m.c.published.Load())
	counter(m.messagesDesc, m.c.messages.Load())
	for i, r := range dropReasons {
		counter(m.droppedDesc, m.c.dropped[i].Load(), string(r))
	}
	for i, e := range publishErrors {
		counter(m.errorsDesc, m.c.pubErrors[i].Load(), e)
	}
	gauge(m.bufferDesc, m.buffered())
	gauge(m.capacityDesc, m.capacity)
	gauge(m.inflightDesc, m.inflight())
	m.batchSize.Collect(ch)
}

// Stats is a snapshot of an Emitter's counters.
type Stats struct {
	Emitted   uint64 // events handed to Emit
	Published uint64 // events acknowledged by JetStream
	Dropped   uint64 // events not published, all reasons
	// DroppedBy splits Dropped by reason; every reason is present.
	DroppedBy     map[DropReason]uint64
	PublishErrors uint64 // failed publish attempts (most were retried)
	Messages      uint64 // messages acknowledged by JetStream
	Buffered      int    // events waiting in the buffer
	InFlight      int    // messages built but not yet acknowledged
}

// Pending is the number of events neither published nor dropped yet.
func (s Stats) Pending() uint64 { return s.Emitted - s.Published - s.Dropped }
