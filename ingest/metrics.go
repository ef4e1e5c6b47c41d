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

// knownMethods are kept as label values; any other method token becomes "other".
var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true,
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

	mu          sync.Mutex
	cfg         Config
	services    map[string]map[string]bool // service -> endpoints seen
	clients     map[string]bool
	reqSeries   map[seriesKey]prometheus.Counter
	durSeries   map[[2]string]prometheus.Observer
	codeStrings [600]string
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
		services:  map[string]map[string]bool{},
		clients:   map[string]bool{},
		reqSeries: map[seriesKey]prometheus.Counter{},
		durSeries: map[[2]string]prometheus.Observer{},
		rejected:  map[event.Reason]prometheus.Counter{},
		overflow:  map[string]prometheus.Counter{},
	}
	for i := range m.codeStrings {
		m.codeStrings[i] = strconv.Itoa(i)
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

// Rejected counts one rejected event.
func (m *Metrics) Rejected(r event.Reason) {
	if c, ok := m.rejected[r]; ok {
		c.Inc()
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
	svc, ep := m.serviceEndpoint(ev.Service, ev.Endpoint)
	key := seriesKey{service: svc, endpoint: ep, method: m.method(ev.Method), code: ev.Status}
	if m.cfg.ClientLabel {
		key.client = m.client(ev.ClientID)
	}
	c, ok := m.reqSeries[key]
	if !ok {
		c = m.newRequestSeries(&key)
	}
	c.Inc()
	if ev.HasLatency {
		dk := [2]string{svc, ep}
		o, ok := m.durSeries[dk]
		if !ok {
			o = m.duration.WithLabelValues(svc, ep)
			dk = [2]string{strings.Clone(svc), strings.Clone(ep)}
			m.durSeries[dk] = o
		}
		o.Observe(ev.LatencyMS / 1000)
	}
}

// newRequestSeries creates the counter for key, or, past the series cap,
// rewrites key to the service's overflow series.
func (m *Metrics) newRequestSeries(key *seriesKey) prometheus.Counter {
	if len(m.reqSeries) >= m.cfg.MaxRequestSeries {
		m.overflow["series"].Inc()
		*key = seriesKey{service: key.service, endpoint: other, method: other}
		if m.cfg.ClientLabel {
			key.client = other
		}
		if c, ok := m.reqSeries[*key]; ok {
			return c
		}
	}
	code := other
	if key.code > 0 {
		code = m.codeStrings[key.code]
	}
	lv := []string{key.service, key.endpoint, key.method, code}
	if m.cfg.ClientLabel {
		lv = append(lv, key.client)
	}
	c := m.requests.WithLabelValues(lv...)
	// Keys outlive the event: clone so they do not pin the decoder's buffer.
	key.service = strings.Clone(key.service)
	key.endpoint, key.client = strings.Clone(key.endpoint), strings.Clone(key.client)
	m.reqSeries[*key] = c
	return c
}

func (m *Metrics) serviceEndpoint(service, endpoint string) (string, string) {
	eps, ok := m.services[service]
	if !ok {
		if len(m.services) >= m.cfg.MaxServices {
			m.overflow["service"].Inc()
			service = other
			if eps, ok = m.services[other]; !ok {
				eps = map[string]bool{}
				m.services[other] = eps
			}
		} else {
			eps = map[string]bool{}
			service = strings.Clone(service)
			m.services[service] = eps
		}
	}
	if !eps[endpoint] {
		if len(eps) >= m.cfg.MaxEndpoints {
			m.overflow["endpoint"].Inc()
			return service, other
		}
		endpoint = strings.Clone(endpoint)
		eps[endpoint] = true
	}
	return service, endpoint
}

func (m *Metrics) method(method string) string {
	if knownMethods[method] {
		return method
	}
	m.overflow["method"].Inc()
	return other
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
