package simulate

import (
	"io"
	"testing"
)

// BenchmarkScenarioHour generates the default scenario: one hour of
// background from 50,000 users at 300 events/s with every attack and
// benign pattern, encoded as JSON lines (docs/simulate.md records the
// figure).
func BenchmarkScenarioHour(b *testing.B) {
	events := 0
	for i := range b.N {
		sc, err := Plan(Options{Seed: uint64(i), Rate: DefaultRate, Attacks: Attacks(), Benign: Benigns()})
		if err != nil {
			b.Fatal(err)
		}
		c, err := sc.WriteEvents(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		events += c.Events
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/op")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
