package admin

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Auth failure reasons, the values of vigil_admin_auth_failures_total{reason}.
const (
	reasonMissing = "missing" // no bearer token
	reasonUnknown = "unknown" // a bearer token that matches no configured one
	reasonScope   = "scope"   // a known token without the route's scope
)

// metrics are the admin server's own metrics.
type metrics struct {
	requests           *prometheus.CounterVec
	authFailures       *prometheus.CounterVec
	rateLimited        prometheus.Counter
	tlsExpiry          prometheus.Gauge
	tlsHandshakeErrors prometheus.Counter
}

// newMetrics registers the admin metrics on reg. clients reports how many
// rate-limit buckets are tracked, for a gauge read at scrape time.
func newMetrics(reg prometheus.Registerer, routes []route, maxClients func() float64, clients func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_admin_requests_total",
			Help: "Admin HTTP requests answered, by route (method and path template; unmatched for unknown paths) and status code.",
		}, []string{"route", "code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_admin_auth_failures_total",
			Help: "Admin API requests refused for authentication: missing token, unknown token, or missing scope.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_admin_rate_limited_total",
			Help: "Admin HTTP requests refused with 429 by the per-client rate limit.",
		}),
		tlsExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_admin_tls_certificate_expiry_timestamp_seconds",
			Help: "Expiry (Unix time) of the admin listener's TLS certificate; 0 without TLS.",
		}),
		tlsHandshakeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_admin_tls_handshake_errors_total",
			Help: "TLS handshakes on the admin listener that failed (old protocol versions, missing or untrusted client certificates, scanners).",
		}),
	}
	collectors := []prometheus.Collector{
		m.requests, m.authFailures, m.rateLimited, m.tlsExpiry, m.tlsHandshakeErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_admin_rate_limit_clients",
			Help: "Clients with a rate-limit bucket; at vigil_admin_rate_limit_clients_max new clients share one bucket.",
		}, clients),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_admin_rate_limit_clients_max",
			Help: "The admin.rate_limit.max_clients in force.",
		}, maxClients),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("admin: register metrics: %w", err)
		}
	}
	for _, r := range []string{reasonMissing, reasonUnknown, reasonScope} {
		m.authFailures.WithLabelValues(r)
	}
	for _, rt := range routes {
		for _, code := range rt.expectedCodes() {
			m.requests.WithLabelValues(rt.label(), strconv.Itoa(code))
		}
	}
	for _, code := range []int{404, 405, 429} {
		m.requests.WithLabelValues(routeUnmatched, strconv.Itoa(code))
	}
	return m, nil
}
