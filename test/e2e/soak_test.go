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
// (detect.state_memory), which this traffic takes about 35 minutes to do.
// VIGIL_E2E_SOAK_FILL=N first emits N events of the same traffic as fast
// as the daemon takes them and waits until it has applied them; the soak
// and its clock start after. 40,000,000 is what those 35 minutes carry,
// and warm-up is then one minute by default, for the pipeline to settle
// from full speed. docs/performance.md has the curves. It logs the curve;
// run it with -v:
//
//	VIGIL_E2E_SOAK=10m VIGIL_E2E_SOAK_FILL=40000000 VIGIL_E2E_SOAK_NATS=external \
//	  go test -run TestSoak -timeout 40m -v ./test/e2e/
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("VIGIL_E2E_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("soak: set VIGIL_E2E_SOAK to a duration, e.g. 10m")
	}
	rate := envInt("VIGIL_E2E_SOAK_RATE", 20_000)
	fill := envInt("VIGIL_E2E_SOAK_FILL", 0)
	recv := newReceiver(t, "hook", 0)
	cfg := vigilConfig{Receivers: []receiverSpec{recv.spec()}, Lateness: 5 * time.Second}
	var ns *natsServer
	if os.Getenv("VIGIL_E2E_SOAK_NATS") == "external" {
		ns = startNATSServer(t)
		cfg.NATSURL = ns.url()
	}
	v := newVigil(t, cfg)
	tr := startTrafficFill(t, v.natsURL(), rate, 1_000_000, fill)
	warmUp := d / 2
	if fill > 0 {
		warmUp = min(time.Minute, d/2)
	}
	if w, err := time.ParseDuration(os.Getenv("VIGIL_E2E_SOAK_WARMUP")); err == nil && w > 0 && w < d {
		warmUp = w
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	record := func(phase string, at time.Duration) sample {
		s := takeSample(t, v, at, tr.em.Stats().Published)
		nsRSS := ""
		if ns != nil {
			nsRSS = fmt.Sprintf(" nats-server rss=%6.1fMiB", float64(residentBytes(ns.p))/(1<<20))
		}
		t.Logf("%s t=%4.0fs rss=%6.1fMiB heap=%6.1fMiB retained=%6.1fMiB goroutines=%3.0f state=%6.1fMiB applied=%9.0f published=%9d%s",
			phase, s.at.Seconds(), s.rss/(1<<20), s.heap/(1<<20), s.retained/(1<<20), s.goroutines, s.state/(1<<20),
			s.received, s.published, nsRSS)
		return s
	}

	if fill > 0 {
		// Until the daemon has applied every fill event: what the Emitter
		// has published once the fill is handed over includes them all.
		fillStart, target := time.Now(), uint64(0)
		for range tick.C {
			s := record("fill", time.Since(fillStart))
			if target == 0 && isClosed(tr.filled) {
				target = tr.em.Stats().Published
			}
			if target > 0 && s.received >= float64(target) {
				break
			}
		}
		t.Logf("soak: filled with %d events in %s", fill, time.Since(fillStart).Round(time.Second))
	}

	start, before := time.Now(), tr.em.Stats().Published
	var samples []sample
	for range tick.C {
		s := record("soak", time.Since(start))
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
	base, end := medianRSS(samples, warmUp, warmUp+time.Minute), medianRSS(samples, d-time.Minute, d)
	peak := slices.MaxFunc(samples, func(a, b sample) int { return cmp.Compare(a.rss, b.rss) })
	t.Logf("soak: resident memory, median of a minute: %.1f MiB after warm-up (%s), %.1f MiB at the end; peak %.1f MiB at %s",
		base/(1<<20), warmUp, end/(1<<20), peak.rss/(1<<20), peak.at)
	if end > 1.1*base {
		t.Errorf("resident memory grew after warm-up: median %.1f MiB in the minute after %s, %.1f MiB in the last",
			base/(1<<20), warmUp, end/(1<<20))
	}
	atWarm, last := samples[slices.IndexFunc(samples, func(s sample) bool { return s.at >= warmUp })], samples[len(samples)-1]
	if last.goroutines > atWarm.goroutines+5 {
		t.Errorf("goroutines grew after warm-up: %v at %s, %v at the end", atWarm.goroutines, atWarm.at, last.goroutines)
	}
	soaked := st.Published - before
	t.Logf("soak: %d events in %s (%.0f/s) after the fill's %d, %d dropped by the publisher",
		soaked, time.Since(start).Round(time.Second), float64(soaked)/time.Since(start).Seconds(), before, st.Dropped)
}

// sample is one reading of the daemon's own metrics. heap is the Go heap
// in use; retained is what the Go runtime holds from the system for its
// heap (in use or not, and not yet returned).
type sample struct {
	at                                               time.Duration
	rss, heap, retained, goroutines, state, received float64
	published                                        uint64
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
		goroutines: m["go_goroutines"], state: m["vigil_detect_state_bytes"],
		received: m["vigil_events_received_total"]}
	if s.rss == 0 || s.goroutines == 0 {
		t.Fatal(fmt.Errorf("no process or Go metrics at %s", at))
	}
	return s
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
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
