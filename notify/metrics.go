package notify

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the outcome label of vigil_notifications_total.
const (
	deliveryDelivered = "delivered" // accepted by the receiver
	deliveryDigested  = "digested"  // accepted as part of a flood digest
	deliveryRetried   = "retried"   // an attempt failed; another follows
	deliveryDead      = "dead"      // gave up; written to the dead-letter stream
	deliverySkipped   = "skipped"   // a redelivery of something already accepted
)

type metrics struct {
	notifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queueDepth    prometheus.Gauge
	dead          *prometheus.CounterVec
	silenced      prometheus.Counter
	transitions   *prometheus.CounterVec
	disabled      *prometheus.GaugeVec
	breakerOpen   *prometheus.GaugeVec
}

// newMetrics registers the notifier's metrics on reg, reusing collectors
// already registered by a previous Notifier (a reload) without changing
// their values; activate creates the receivers' series.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Name: "notifications_total",
			Help: "Notifications by receiver and outcome (delivered, digested, retried, dead, skipped).",
		}, []string{"receiver", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vigil", Name: "notification_duration_seconds",
			Help:    "Duration of each delivery attempt.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"receiver"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "vigil", Name: "notify_queue_depth",
			Help: "Deliveries waiting in the VIGIL_NOTIFY stream.",
		}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Name: "notifications_dead_total",
			Help: "Deliveries given up and written to the dead-letter stream.",
		}, []string{"receiver"}),
		silenced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vigil", Name: "alerts_silenced_total",
			Help: "Alert transitions muted by a silence.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Name: "alert_transitions_total",
			Help: "Alert transitions from the detection engine, by transition and outcome (notified, duplicate, silenced, unrouted, folded); announcing an alert already announced, after a restart, is not counted.",
		}, []string{"transition", "outcome"}),
		disabled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "vigil", Name: "notify_receiver_disabled",
			Help: "1 while a receiver is disabled until reload (HTTP 410, revoked credentials).",
		}, []string{"receiver"}),
		breakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "vigil", Name: "notify_circuit_open",
			Help: "1 while a receiver's circuit breaker is open or half-open.",
		}, []string{"receiver"}),
	}
	var errs []error
	m.notifications = reuse(reg, m.notifications, &errs)
	m.duration = reuse(reg, m.duration, &errs)
	m.queueDepth = reuse(reg, m.queueDepth, &errs)
	m.dead = reuse(reg, m.dead, &errs)
	m.silenced = reuse(reg, m.silenced, &errs)
	m.transitions = reuse(reg, m.transitions, &errs)
	m.disabled = reuse(reg, m.disabled, &errs)
	m.breakerOpen = reuse(reg, m.breakerOpen, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register notify metrics: %w", err)
	}
	return m, nil
}

// activate creates every label value of receivers, so dashboards show zeros
// rather than gaps, and resets the per-receiver gauges to them: each
// receiver enabled with its circuit closed, and no series for receivers no
// longer configured.
func (m *metrics) activate(receivers []string) {
	m.disabled.Reset()
	m.breakerOpen.Reset()
	for _, r := range receivers {
		for _, o := range []string{deliveryDelivered, deliveryDigested, deliveryRetried, deliveryDead, deliverySkipped} {
			m.notifications.WithLabelValues(r, o)
		}
		m.duration.WithLabelValues(r)
		m.dead.WithLabelValues(r)
		m.disabled.WithLabelValues(r).Set(0)
		m.breakerOpen.WithLabelValues(r).Set(0)
	}
	for _, t := range []string{"firing", "repeat", "resolved"} {
		for _, o := range []string{outcomeNotified, outcomeDuplicate, outcomeSilenced, outcomeUnrouted, outcomeFolded} {
			m.transitions.WithLabelValues(t, o)
		}
	}
}

// reuse registers c on reg and returns it, or returns the equal collector
// registered before (by the Notifier this one replaces on reload).
func reuse[T prometheus.Collector](reg prometheus.Registerer, c T, errs *[]error) T {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	if err != nil {
		*errs = append(*errs, err)
	}
	return c
}
