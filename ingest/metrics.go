package ingest

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/event"
)

// other is the label value used once a label's cap is reached.
const other = "other"

// methods are kept as label values; any other method token becomes "other",
// the last entry.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", other}

const otherMethod = uint8(len(methods) - 1)

// methodIndex returns method's index in methods, otherMethod when it is not
// one of them.
func methodIndex(method string) uint8 {
	for i, m := range methods[:otherMethod] {
		if m == method {
			return uint8(i)
		}
	}
	return otherMethod
}

// Metrics aggregates applied events into Prometheus metrics with bounded
// label values. It is safe for concurrent use.
type Metrics struct {
	received     prometheus.Counter
	rejected     map[event.Reason]prometheus.Counter
	batches      prometheus.Counter
	deadLettered prometheus.Counter
	delay        prometheus.Histogram
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	overflow     map[string]prometheus.Counter

	mu        sync.Mutex
	cfg       Config
	services  map[string]*int // service label -> how many endpoints it keeps
	clients   map[string]bool
	endpoints map[[2]string]*endpointSeries // by service and endpoint label
	reqSeries map[seriesKey]prometheus.Counter
	codes     [600]string
}

// endpointSeries is what Observe needs for one service and endpoint: their
// label values, the duration histogram and the request counters made so
// far. Observe finds it with one lookup of the event's service and
// endpoint while both are within their caps. The series of the endpoints
// a service keeps are also the record of which endpoints those are.
type endpointSeries struct {
	service, endpoint string
	overflow          bool                // a label is "other": its events take the slow path
	kept              bool                // takes a place under MaxEndpoints; false for the "other" of overflow
	duration          prometheus.Observer // nil until an event reports latency
	requests          map[requestKey]prometheus.Counter
}

type requestKey struct {
	method uint8 // index in methods
	code   uint16
	client string
}

type seriesKey struct {
	service, endpoint, method, client string
	code                              int
}

// NewMetrics registers the ingest metrics on reg and pre-creates the label
// values that are known at start.
func NewMetrics(reg prometheus.Registerer, cfg Config) *Metrics {
	m := &Metrics{
		cfg:       cfg,
		services:  map[string]*int{},
		clients:   map[string]bool{},
		endpoints: map[[2]string]*endpointSeries{},
		reqSeries: map[seriesKey]prometheus.Counter{},
		rejected:  map[event.Reason]prometheus.Counter{},
		overflow:  map[string]prometheus.Counter{},
	}
	for i := range m.codes {
		m.codes[i] = strconv.Itoa(i)
	}
	m.received = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_events_received_total", Help: "Valid events applied.",
	})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_events_rejected_total", Help: "Events rejected by validation, by reason.",
	}, []string{"reason"})
	for _, r := range event.Reasons() {
		m.rejected[r] = rejected.WithLabelValues(string(r))
	}
	m.batches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_ingest_batches_total", Help: "Batches of messages pulled from JetStream and processed.",
	})
	m.deadLettered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vigil_events_deadlettered_total", Help: "Rejected events copied to the dead-letter stream.",
	})
	m.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_event_delay_seconds",
		Help:    "Time from an event's ts to when Vigil applied it.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	labels := []string{"service", "endpoint", "method", "code"}
	if cfg.ClientLabel {
		labels = append(labels, "client")
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_http_requests_total", Help: "API requests reported by services.",
	}, labels)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vigil_http_request_duration_seconds",
		Help:    "API request latency reported by services (from latency_ms).",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"service", "endpoint"})
	overflow := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_label_overflow_total",
		Help: "Events whose label value was replaced by \"other\" because a cap was reached.",
	}, []string{"label"})
	for _, l := range []string{"service", "endpoint", "method", "client", "series"} {
		m.overflow[l] = overflow.WithLabelValues(l)
	}
	reg.MustRegister(m.received, rejected, m.batches, m.deadLettered, m.delay, m.requests, m.duration, overflow)
	return m
}

// Rejected counts n events rejected for r.
func (m *Metrics) Rejected(r event.Reason, n int) {
	if c, ok := m.rejected[r]; ok {
		c.Add(float64(n))
	}
}

// Batch counts one processed batch.
func (m *Metrics) Batch() { m.batches.Inc() }

// DeadLettered counts one event copied to the dead-letter stream.
func (m *Metrics) DeadLettered() { m.deadLettered.Inc() }

// Observe records one applied event, received at now.
func (m *Metrics) Observe(ev *event.Event, now time.Time) {
	m.received.Inc()
	m.delay.Observe(max(now.Sub(ev.Time).Seconds(), 0))

	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.endpoints[[2]string{ev.Service, ev.Endpoint}]
	if es == nil || es.overflow {
		es = m.endpoint(ev.Service, ev.Endpoint)
	}
	key := requestKey{method: methodIndex(ev.Method), code: uint16(ev.Status)}
	if key.method == otherMethod {
		m.overflow["method"].Inc()
	}
	if m.cfg.ClientLabel {
		key.client = m.client(ev.ClientID)
	}
	c := es.requests[key]
	if c == nil {
		c = m.newRequestSeries(es, key)
	}
	c.Inc()
	if ev.HasLatency {
		if es.duration == nil { // only for endpoints that report latency
			es.duration = m.duration.WithLabelValues(es.service, es.endpoint)
		}
		es.duration.Observe(ev.LatencyMS / 1000)
	}
}

// endpoint returns the series of service and endpoint, counting the
// labels that overflow their caps. A service within MaxServices is kept in
// m.services, with the number of endpoints it keeps; services past the cap
// share "other", which keeps endpoints like any other service. An endpoint
// within its service's MaxEndpoints is kept as its series; endpoints past
// the cap share the service's "other" series. The strings it keeps are
// copies, so they do not pin the decoder's buffer.
func (m *Metrics) endpoint(service, endpoint string) *endpointSeries {
	n, ok := m.services[service]
	if !ok && len(m.services) >= m.cfg.MaxServices {
		m.overflow["service"].Inc()
		service = other
		n, ok = m.services[other]
	}
	if !ok {
		// A new key is a copy. Counting through the pointer leaves it be:
		// assigning to an existing key would store the caller's string,
		// which may point into the message.
		service, n = strings.Clone(service), new(int)
		m.services[service] = n
	}
	key := [2]string{service, endpoint}
	// An endpoint named "other" is kept only if it came within the cap; the
	// "other" series that overflow made does not make it kept.
	if es := m.endpoints[key]; es != nil && es.kept {
		return es
	}
	kept := *n < m.cfg.MaxEndpoints
	if kept {
		*n++
	} else {
		m.overflow["endpoint"].Inc()
		key[1] = other
		if es := m.endpoints[key]; es != nil {
			return es
		}
	}
	key = [2]string{strings.Clone(key[0]), strings.Clone(key[1])}
	es := &endpointSeries{
		service: key[0], endpoint: key[1], overflow: key[0] == other || key[1] == other,
		kept: kept, requests: map[requestKey]prometheus.Counter{},
	}
	m.endpoints[key] = es
	return es
}

// newRequestSeries creates the counter for key in es and keeps it there,
// or, past the series cap, returns the service's overflow series.
func (m *Metrics) newRequestSeries(es *endpointSeries, key requestKey) prometheus.Counter {
	if len(m.reqSeries) >= m.cfg.MaxRequestSeries {
		m.overflow["series"].Inc()
		sk := seriesKey{service: es.service, endpoint: other, method: other}
		if m.cfg.ClientLabel {
			sk.client = other
		}
		if c, ok := m.reqSeries[sk]; ok {
			return c
		}
		return m.newSeries(sk)
	}
	key.client = strings.Clone(key.client) // kept: do not pin the decoder's buffer
	c := m.newSeries(seriesKey{service: es.service, endpoint: es.endpoint, method: methods[key.method],
		code: int(key.code), client: key.client})
	es.requests[key] = c
	return c
}

// newSeries creates and records the request counter with the labels of sk.
func (m *Metrics) newSeries(sk seriesKey) prometheus.Counter {
	code := other
	if sk.code > 0 && sk.code < len(m.codes) {
		code = m.codes[sk.code]
	}
	lv := []string{sk.service, sk.endpoint, sk.method, code}
	if m.cfg.ClientLabel {
		lv = append(lv, sk.client)
	}
	c := m.requests.WithLabelValues(lv...)
	m.reqSeries[sk] = c
	return c
}

func (m *Metrics) client(id string) string {
	if id == "" {
		return ""
	}
	if m.clients[id] {
		return id
	}
	if len(m.clients) >= m.cfg.MaxClients {
		m.overflow["client"].Inc()
		return other
	}
	id = strings.Clone(id)
	m.clients[id] = true
	return id
}
