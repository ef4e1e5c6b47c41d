package rules

import (
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/simulate"
)

// benchEvents is realistic traffic over groups distinct source addresses and
// users: 4 services, 90% successes, 8% failed logins, 2% server errors.
func benchEvents(n, groups int) []event.Event {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	services := []string{"auth", "billing", "catalog", "orders"}
	evs := make([]event.Event, n)
	for i := range evs {
		g := (i * 7919) % groups
		ev := event.Event{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Service: services[i%4],
			RequestID: "req-" + strconv.Itoa(i), Method: "GET", Endpoint: "/v1/catalog/items/{id}", Status: 200,
			SourceIP: netip.AddrFrom4([4]byte{10, byte(g >> 16), byte(g >> 8), byte(g)}),
			User:     "user" + strconv.Itoa(g), UserAgent: "Mozilla/5.0", Attrs: map[string]string{},
		}
		switch r := i % 100; {
		case r < 8:
			ev.Service, ev.Method, ev.Endpoint, ev.Status = "auth", "POST", "/v1/auth/login", 401
		case r < 10:
			ev.Status = 503
		case r < 20:
			ev.Service, ev.Method, ev.Endpoint = "auth", "POST", "/v1/auth/login"
		}
		evs[i] = ev
	}
	return evs
}

// BenchmarkEngine measures one event through the default rules with 100,000
// distinct groups (source addresses and users).
func BenchmarkEngine(b *testing.B) {
	rs, err := Load(os.Getenv("VIGIL_BENCH_RULES"))
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(200_000, 100_000)
	benchProcess(b, rs, evs, benchStateMemory())
}

// benchProcess measures one event of evs, looped over b.N, through rs with
// a state budget of stateMemory bytes (0: the default).
func benchProcess(b *testing.B, rs []*detect.Rule, evs []event.Event, stateMemory int) {
	e, err := detect.New(rs, detect.Options{Lateness: 5 * time.Second, Emit: func(detect.Alert) {}, StateMemory: stateMemory})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	// Event time must not go backwards across b.N loops: shift each pass.
	span := evs[len(evs)-1].Time.Sub(evs[0].Time) + time.Second
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%len(evs) == 0 {
			b.StopTimer()
			for j := range evs {
				evs[j].Time = evs[j].Time.Add(span)
			}
			b.StartTimer()
		}
		e.Process(&evs[i%len(evs)])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// BenchmarkStateMemory sprays 5 million distinct source addresses (a failed
// login each) through the default rules with the default 256 MiB state
// budget and reports the process's resident memory. Run it with
// -benchtime=1x; see docs/performance.md.
func BenchmarkStateMemory(b *testing.B) {
	rs, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	budget := int(detect.DefaultConfig().StateMemory)
	const n = 5_000_000
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for range b.N {
		debug.FreeOSMemory()
		before := rssBytes(b)
		e, err := detect.New(rs, detect.Options{StateMemory: budget, Lateness: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ev := event.Event{Service: "auth", Method: "POST", Endpoint: "/v1/auth/login", Status: 401, RequestID: "r"}
		for i := range n {
			ev.Time = t0.Add(time.Duration(i) * 50 * time.Microsecond)
			ev.SourceIP = netip.AddrFrom4([4]byte{byte(1 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
			ev.User = "u" + strconv.Itoa(i)
			e.Process(&ev)
		}
		debug.FreeOSMemory()
		after := rssBytes(b)
		st := e.Stats()
		b.ReportMetric(float64(after-before)/(1<<20), "rss_growth_MiB")
		b.ReportMetric(float64(budget)/(1<<20), "budget_MiB")
		b.ReportMetric(float64(st.StateBytes)/(1<<20), "state_MiB")
		b.ReportMetric(float64(st.StateGroups), "groups")
		e.Close()
	}
}

// rssBytes reads the process's resident set size from /proc.
func rssBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status on this system")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return kb << 10
			}
		}
	}
	b.Fatal("VmRSS not found")
	return 0
}

// benchStateMemory is the state budget of BenchmarkEngine: the default, or
// VIGIL_BENCH_STATE_MIB.
func benchStateMemory() int {
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_STATE_MIB")); err == nil {
		return v << 20
	}
	return int(detect.DefaultConfig().StateMemory)
}

// mixEvents is API traffic as vigil replay's benchmark sees it: 90 %
// successful reads over 50,000 clients, 9 % logins (one in ten failing),
// 1 % server errors, latency on every event, and a brute force run.
func mixEvents(n int) []event.Event {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	services := []string{"auth", "billing", "catalog", "orders"}
	evs := make([]event.Event, n)
	for i := range evs {
		g := (i * 7919) % 50_000
		ev := event.Event{
			Time: t0.Add(time.Duration(i) * 2 * time.Millisecond), Service: services[i%4],
			RequestID: "req-" + strconv.Itoa(i), Method: "GET", Endpoint: "/v1/catalog/items/{id}", Status: 200,
			Path: "/v1/catalog/items/" + strconv.Itoa(g), LatencyMS: float64(i%500) / 7, HasLatency: true,
			SourceIP: netip.AddrFrom4([4]byte{100, 64, byte(g >> 8), byte(g)}), UserAgent: "Mozilla/5.0",
		}
		switch r := i % 100; {
		case r < 1:
			ev.Status = 503
		case r < 10:
			ev.Service, ev.Method, ev.Endpoint, ev.Path, ev.User = "auth", "POST", "/v1/auth/login", "/v1/auth/login", "user"+strconv.Itoa(g)
			if r == 9 {
				ev.Status = 401
			}
		}
		if i%50 == 0 && i%200_000 < 20_000 {
			ev.Service, ev.Method, ev.Endpoint, ev.Status = "auth", "POST", "/v1/auth/login", 401
			ev.SourceIP, ev.User = netip.AddrFrom4([4]byte{203, 0, 113, byte(i / 200_000)}), "victim"+strconv.Itoa(i%97)
		}
		evs[i] = ev
	}
	return evs
}

// BenchmarkEngineMix measures one event of mixEvents through the default
// rules (or VIGIL_BENCH_RULES), the engine's share of vigil replay.
func BenchmarkEngineMix(b *testing.B) {
	rs, err := Load(os.Getenv("VIGIL_BENCH_RULES"))
	if err != nil {
		b.Fatal(err)
	}
	benchProcess(b, rs, mixEvents(1_000_000), 0)
}

// BenchmarkEngineScenario measures one event of twenty minutes of vigil
// simulate's realistic traffic (every attack and look-alike) through the
// default rules: the engine's share of vigil replay on such traffic.
func BenchmarkEngineScenario(b *testing.B) {
	rs, err := LoadWith(os.Getenv("VIGIL_BENCH_RULES"), simLists())
	if err != nil {
		b.Fatal(err)
	}
	sc, err := simulate.Plan(simulate.Options{Seed: 7, Duration: 20 * time.Minute, Rate: simulate.DefaultRate,
		Attacks: simulate.Attacks(), Benign: simulate.Benigns(), BaselineWarmup: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	var evs []event.Event
	s := sc.Stream()
	for {
		var ev event.Event
		if _, ok := s.Next(&ev); !ok {
			break
		}
		evs = append(evs, ev)
	}
	benchProcess(b, rs, evs, 0)
}
