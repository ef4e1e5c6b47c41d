package emit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// gather returns the value of every vigil_emit_* series, keyed by name and
// labels ("vigil_emit_events_dropped_total{reason=closed}").
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ns := startNATS(t)
	e := newEmitter(t, ns.connect(), WithRegisterer(reg), WithBufferSize(64), WithMaxBatch(10))
	for i := range 25 {
		e.Emit(testEvent(i))
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.Emit(testEvent(99))
	got := gather(t, reg)
	want := map[string]float64{
		"vigil_emit_events_emitted_total":                     26,
		"vigil_emit_events_published_total":                   25,
		"vigil_emit_messages_published_total":                 3,
		"vigil_emit_batch_events":                             3,
		"vigil_emit_events_dropped_total{reason=closed}":      1,
		"vigil_emit_events_dropped_total{reason=buffer_full}": 0,
		"vigil_emit_events_dropped_total{reason=invalid}":     0,
		"vigil_emit_events_dropped_total{reason=too_large}":   0,
		"vigil_emit_events_dropped_total{reason=rejected}":    0,
		"vigil_emit_publish_errors_total{error=timeout}":      0,
		"vigil_emit_publish_errors_total{error=disconnected}": 0,
		"vigil_emit_buffer_events":                            0,
		"vigil_emit_buffer_capacity_events":                   64,
		"vigil_emit_inflight_messages":                        0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := New(ns.connect(), WithRegisterer(reg)); err == nil {
		t.Error("a second Emitter on the same registry registered its metrics")
	}
}

func TestOptionsValidated(t *testing.T) {
	ns := startNATS(t)
	nc := ns.connect()
	tests := []struct {
		name string
		opt  Option
	}{
		{"zero buffer", WithBufferSize(0)},
		{"zero batch", WithMaxBatch(0)},
		{"negative linger", WithLinger(-time.Millisecond)},
		{"zero ack timeout", WithAckTimeout(0)},
		{"backoff min above max", WithRetryBackoff(time.Second, time.Millisecond)},
		{"bad service", WithService("Billing API")},
		{"nil logger", WithLogger(nil)},
		{"nil clock", WithClock(nil)},
		{"empty subject prefix", WithSubjectPrefix("")},
		{"subject prefix below vigil.events.", WithSubjectPrefix("vigil.events.eu")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := New(nc, tt.opt); err == nil {
				_ = e.Close(context.Background())
				t.Error("New accepted the option")
			}
		})
	}
}

// TestConnect checks that Connect returns at once when NATS is not there yet,
// buffers, and publishes once the server comes up.
func TestConnect(t *testing.T) {
	ns := startNATS(t)
	url := ns.url()
	ns.stop()
	e, err := Connect(url, WithService("api"), WithNATSOptions(nats.ReconnectWait(20*time.Millisecond)))
	if err != nil {
		t.Fatalf("Connect with the server down: %v", err)
	}
	e.Emit(testEvent(1))
	ns.start()
	testkit.WaitUntil(t, 20*time.Second, "event published", func() bool { return e.Stats().Published == 1 })
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !e.owned.IsClosed() {
		t.Error("Close left the connection it opened open")
	}
}
