package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// reloadMetrics export the outcome of the last config (re)load.
type reloadMetrics struct {
	success   prometheus.Gauge
	timestamp prometheus.Gauge
	info      *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_last_reload_successful", Help: "1 if the last config load or reload succeeded.",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_last_reload_success_timestamp_seconds", Help: "When the config was last loaded successfully.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_config_info", Help: "Hash of the config in force; always 1.",
		}, []string{"hash"}),
	}
	reg.MustRegister(m.success, m.timestamp, m.info)
	return m
}

func (m *reloadMetrics) set(hash string, ok bool, now time.Time) {
	if !ok {
		m.success.Set(0)
		return
	}
	m.success.Set(1)
	m.timestamp.Set(float64(now.Unix()))
	m.info.Reset()
	m.info.WithLabelValues(hash).Set(1)
}
