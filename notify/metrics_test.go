package notify

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterValue returns the value of the series of name with exactly labels
// (counter or gauge), failing when it does not exist.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := seriesValue(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seriesValue returns the value of the series of name with exactly labels
// (counter or gauge).
func seriesValue(reg *prometheus.Registry, name string, labels map[string]string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsEqual(m.GetLabel(), labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue(), nil
				case m.Gauge != nil:
					return m.Gauge.GetValue(), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no series %s%v", name, labels)
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}
