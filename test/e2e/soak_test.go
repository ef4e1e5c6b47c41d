package e2e

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestSoak runs the daemon for VIGIL_E2E_SOAK (e.g. 10m) under
// VIGIL_E2E_SOAK_RATE events/s (default 20,000) whose source addresses
// cycle through one million distinct ones, sampling resident memory and
// goroutines every 10s. With VIGIL_E2E_SOAK_NATS=external the daemon uses
// a nats-server process, whose memory is then logged apart from Vigil's
// (the embedded server's counts in Vigil's own). After a warm-up
// (VIGIL_E2E_SOAK_WARMUP, by default half the run), memory must stay flat
// (the median of the last minute's samples within 10% of the median of
// the minute after warm-up) and goroutines must not grow; the daemon must
// keep up with the traffic.
//
// Memory rises until the detection state has filled its budget
// (detect.state_memory), which this traffic takes about 35 minutes to do
// (VIGIL_E2E_SOAK=40m VIGIL_E2E_SOAK_WARMUP=30m): docs/performance.md has
// the curves. It logs the curve; run it with -v:
//
//	VIGIL_E2E_SOAK=10m go test -run TestSoak -timeout 30m -v ./test/e2e/
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("VIGIL_E2E_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("soak: set VIGIL_E2E_SOAK to a duration, e.g. 10m")
	}
	rate := envInt("VIGIL_E2E_SOAK_RATE", 20_000)
	recv := newReceiver(t, "hook", 0)
	cfg := vigilConfig{Receivers: []receiverSpec{recv.spec()}, Lateness: 5 * time.Second}
	var ns *natsServer
	if os.Getenv("VIGIL_E2E_SOAK_NATS") == "external" {
		ns = startNATSServer(t)
		cfg.NATSURL = ns.url()
	}
	v := newVigil(t, cfg)
	tr := startTrafficIPs(t, v.natsURL(), rate, 1_000_000)
	warmUp := d / 2
	if w, err := time.ParseDuration(os.Getenv("VIGIL_E2E_SOAK_WARMUP")); err == nil && w > 0 && w < d {
		warmUp = w
	}

	start := time.Now()
	var samples []sample
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for range tick.C {
		s := takeSample(t, v, time.Since(start), tr.em.Stats().Published)
		nsRSS := ""
		if ns != nil {
			nsRSS = fmt.Sprintf(" nats-server rss=%6.1fMiB", float64(residentBytes(ns.p))/(1<<20))
		}
		t.Logf("soak t=%4.0fs rss=%6.1fMiB heap=%6.1fMiB retained=%6.1fMiB goroutines=%3.0f state=%6.1fMiB firing=%4.0f applied=%9.0f published=%9d%s",
			s.at.Seconds(), s.rss/(1<<20), s.heap/(1<<20), s.retained/(1<<20), s.goroutines, s.state/(1<<20), s.firing,
			s.received, s.published, nsRSS)
		samples = append(samples, s)
		if s.at >= d {
			break
		}
	}
	st := tr.stop(t)
	testkit.WaitFor(t, time.Minute, "the daemon to apply every event", func() error {
		return receivedAtLeast(v, float64(st.Published))
	})
	// A minute's median on either side, so that a passing peak (messages
	// in flight while the daemon is a second behind) does not count as
	// growth; peaks are bounded by ingest's in-flight limits.
	last := samples[len(samples)-1]
	base, end := medianRSS(samples, warmUp, warmUp+time.Minute), medianRSS(samples, last.at-time.Minute, last.at)
	peak := slices.MaxFunc(samples, func(a, b sample) int { return cmp.Compare(a.rss, b.rss) })
	t.Logf("soak: resident memory, median of a minute: %.1f MiB after warm-up (%s), %.1f MiB at the end; peak %.1f MiB at %s",
		base/(1<<20), warmUp, end/(1<<20), peak.rss/(1<<20), peak.at)
	if end > 1.1*base {
		t.Errorf("resident memory grew after warm-up: median %.1f MiB in the minute after %s, %.1f MiB in the last",
			base/(1<<20), warmUp, end/(1<<20))
	}
	atWarm := samples[slices.IndexFunc(samples, func(s sample) bool { return s.at >= warmUp })]
	if last.goroutines > atWarm.goroutines+5 {
		t.Errorf("goroutines grew after warm-up: %v at %s, %v at the end", atWarm.goroutines, atWarm.at, last.goroutines)
	}
	t.Logf("soak: %d events in %s (%.0f/s), %d dropped by the publisher",
		st.Published, time.Since(start).Round(time.Second), float64(st.Published)/time.Since(start).Seconds(), st.Dropped)
}

// sample is one reading of the daemon's own metrics. heap is the Go heap
// in use; retained is what the Go runtime holds from the system for its
// heap (in use or not, and not yet returned); firing counts the alerts
// firing.
type sample struct {
	at                                                       time.Duration
	rss, heap, retained, goroutines, state, firing, received float64
	published                                                uint64
}

func takeSample(t *testing.T, v *vigil, at time.Duration, published uint64) sample {
	t.Helper()
	m, err := v.metrics()
	if err != nil {
		t.Fatalf("scrape at %s: %v", at, err)
	}
	s := sample{at: at, published: published,
		rss: m["process_resident_memory_bytes"], heap: m["go_memstats_heap_inuse_bytes"],
		retained:   m["go_memstats_heap_sys_bytes"] - m["go_memstats_heap_released_bytes"],
		goroutines: m["go_goroutines"], state: m["vigil_detect_state_bytes"], firing: sumMetric(m, "vigil_alerts_firing"),
		received: m["vigil_events_received_total"]}
	if s.rss == 0 || s.goroutines == 0 {
		t.Fatal(fmt.Errorf("no process or Go metrics at %s", at))
	}
	return s
}

// medianRSS is the median resident memory of the samples taken in (from, to].
func medianRSS(samples []sample, from, to time.Duration) float64 {
	var rss []float64
	for _, s := range samples {
		if s.at > from && s.at <= to {
			rss = append(rss, s.rss)
		}
	}
	if len(rss) == 0 {
		return 0
	}
	slices.Sort(rss)
	return rss[len(rss)/2]
}
