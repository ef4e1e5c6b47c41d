package simulate

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// serviceStats are a service's requests, 5xx answers and latencies per
// second of a scenario.
type serviceStats struct {
	total, errors []int
	latency       [][]float64
}

func collectServices(t *testing.T, sc *Scenario) map[string]*serviceStats {
	n := int(sc.horizon / time.Second)
	stats := map[string]*serviceStats{}
	observe(t, sc, func(_ *item, ev *event.Event) {
		s := stats[ev.Service]
		if s == nil {
			s = &serviceStats{make([]int, n), make([]int, n), make([][]float64, n)}
			stats[ev.Service] = s
		}
		i := int(ev.Time.Sub(sc.opts.Start) / time.Second)
		s.total[i]++
		if ev.Status >= 500 {
			s.errors[i]++
		}
		s.latency[i] = append(s.latency[i], ev.LatencyMS)
	})
	return stats
}

// share is the 5xx share over seconds [from, to).
func (s *serviceStats) share(from, to time.Duration) float64 {
	e, n := 0, 0
	for i := int(from / time.Second); i < int(to/time.Second); i++ {
		e, n = e+s.errors[i], n+s.total[i]
	}
	return float64(e) / float64(max(n, 1))
}

func (s *serviceStats) volume(from, to time.Duration) float64 {
	n := 0
	for i := int(from / time.Second); i < int(to/time.Second); i++ {
		n += s.total[i]
	}
	return float64(n) / (to - from).Seconds()
}

func (s *serviceStats) p95(from, to time.Duration) float64 {
	var all []float64
	for i := int(from / time.Second); i < int(to/time.Second); i++ {
		all = append(all, s.latency[i]...)
	}
	slices.Sort(all)
	return all[int(0.95*float64(len(all)))]
}

// TestServiceAttacksChangeTheirService measures what the service attacks
// do: the 5xx share rises by about the drawn factor, an outage fails about
// the drawn share, the p95 latency rises by about the drawn factor with no
// more errors; before them the service has its baseline history.
func TestServiceAttacksChangeTheirService(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		sc := plan(t, Options{Seed: seed, Rate: 300, Users: 5000, Live: true, BaselineWarmup: 4 * time.Minute,
			Duration: 16 * time.Minute, Attacks: []Attack{ErrorSpike, Outage, LatencySlowdown}})
		stats := collectServices(t, sc)
		for _, it := range sc.items {
			s, param := stats[it.service.name], it.params
			before, during := s.share(0, it.start), s.share(it.start, it.end)
			switch Attack(it.name) {
			case ErrorSpike:
				f := param["factor"].(float64)
				if ratio := during / it.service.errBase; ratio < 0.6*f || ratio > 1.6*f || f < 5 {
					t.Errorf("seed %d: error spike on %s: 5xx share %.4f, %.1f× the baseline %.4f; want about %.1f× (≥ 5× live)", seed, it.service.name, during, ratio, it.service.errBase, f)
				}
			case Outage:
				if want := param["failing_share"].(float64); math.Abs(during-want) > 0.15 || before > 0.05 {
					t.Errorf("seed %d: outage on %s: %.2f failing (%.3f before); want about %.2f", seed, it.service.name, during, before, want)
				}
			case LatencySlowdown:
				f, ratio := param["factor"].(float64), s.p95(it.start, it.end)/s.p95(0, it.start)
				if ratio < 0.6*f || ratio > 1.6*f || during > 3*before+0.01 {
					t.Errorf("seed %d: slowdown on %s: p95 %.1f×, 5xx %.4f→%.4f; want about %.1f×, no more errors", seed, it.service.name, ratio, before, during, f)
				}
			}
		}
	}
}

// TestServiceBenignPatterns measures deploy blips (every answer a 503)
// and surges (the volume multiplied, the error share as before).
func TestServiceBenignPatterns(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		sc := plan(t, Options{Seed: seed, Rate: 150, Users: 5000, Duration: 15 * time.Minute, Benign: []Benign{DeployBlip, TrafficSurge}})
		stats := collectServices(t, sc)
		fxs := sc.Stream().fx
		for _, it := range sc.items {
			s := stats[it.service.name]
			switch Benign(it.name) {
			case DeployBlip:
				for _, f := range fxs {
					if from, to := f.start.Truncate(time.Second)+time.Second, f.end.Truncate(time.Second); to > from {
						if sh := s.share(from, to); s.volume(from, to) > 0 && sh != 1 {
							t.Errorf("seed %d: deploy blip on %s: 5xx share %.2f; want 1", seed, it.service.name, sh)
						}
					}
				}
			case TrafficSurge:
				f := it.params["factor"].(float64)
				ratio := s.volume(it.start, it.end) / s.volume(0, it.start)
				if ratio < 0.6*f || ratio > 1.5*f || s.share(it.start, it.end) > 3*s.share(0, it.start)+0.005 {
					t.Errorf("seed %d: surge on %s: volume %.1f× (want about %.1f×), 5xx %.4f before, %.4f during", seed, it.service.name,
						ratio, f, s.share(0, it.start), s.share(it.start, it.end))
				}
			}
		}
	}
}
