package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/vigil-sec/vigil/event"
)

func TestMetricsBoundLabels(t *testing.T) {
	type req struct{ service, endpoint, method, client string }
	cases := []struct {
		name     string
		tune     func(*Config)
		events   []req
		want     map[string]float64 // "service|endpoint|method|code[|client]" -> count
		overflow map[string]float64
	}{
		{
			name:   "within caps every value is kept",
			events: []req{{"a", "/x", "GET", ""}, {"a", "/x", "GET", ""}, {"b", "/y", "POST", ""}},
			want:   map[string]float64{"a|/x|GET|200": 2, "b|/y|POST|200": 1},
		},
		{
			name:     "services past the cap become other",
			tune:     func(c *Config) { c.MaxServices = 2 },
			events:   []req{{"a", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"c", "/x", "GET", ""}, {"d", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "b|/x|GET|200": 1, "other|/x|GET|200": 2},
			overflow: map[string]float64{"service": 2},
		},
		{
			name:     "endpoints past the per-service cap become other",
			tune:     func(c *Config) { c.MaxEndpoints = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"a", "/y", "GET", ""}, {"b", "/y", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "a|other|GET|200": 1, "b|/y|GET|200": 1},
			overflow: map[string]float64{"endpoint": 1},
		},
		{
			name:     "unknown methods become other",
			events:   []req{{"a", "/x", "PROPFIND", ""}, {"a", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|other|200": 1, "a|/x|GET|200": 1},
			overflow: map[string]float64{"method": 1},
		},
		{
			name:     "client label is capped",
			tune:     func(c *Config) { c.ClientLabel, c.MaxClients = true, 1 },
			events:   []req{{"a", "/x", "GET", "c1"}, {"a", "/x", "GET", "c2"}, {"a", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200|c1": 1, "a|/x|GET|200|other": 1, "a|/x|GET|200|": 1},
			overflow: map[string]float64{"client": 1},
		},
		{
			name:     "series past the cap collapse into the service's other series",
			tune:     func(c *Config) { c.MaxRequestSeries = 2 },
			events:   []req{{"a", "/x", "GET", ""}, {"a", "/y", "GET", ""}, {"a", "/z", "GET", ""}, {"a", "/w", "PUT", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "a|/y|GET|200": 1, "a|other|other|other": 2},
			overflow: map[string]float64{"series": 2},
		},
		// The cases below pin how the service and endpoint caps treat events
		// that overflow again, and real values that are literally "other".
		{
			name:     "every event of an overflowed service counts",
			tune:     func(c *Config) { c.MaxServices = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"c", "/y", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "other|/x|GET|200": 2, "other|/y|GET|200": 1},
			overflow: map[string]float64{"service": 3},
		},
		{
			name:     "overflowed services share other, whose endpoints are capped",
			tune:     func(c *Config) { c.MaxServices, c.MaxEndpoints = 1, 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"c", "/y", "GET", ""}, {"b", "/y", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "other|/x|GET|200": 1, "other|other|GET|200": 2},
			overflow: map[string]float64{"service": 3, "endpoint": 2},
		},
		{
			name:     "every event of an overflowed endpoint counts",
			tune:     func(c *Config) { c.MaxEndpoints = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"a", "/y", "GET", ""}, {"a", "/y", "GET", ""}, {"a", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 2, "a|other|GET|200": 2},
			overflow: map[string]float64{"endpoint": 2},
		},
		{
			name:     "an endpoint named other within the cap is kept and takes a place",
			tune:     func(c *Config) { c.MaxEndpoints = 2 },
			events:   []req{{"a", "other", "GET", ""}, {"a", "/x", "GET", ""}, {"a", "/y", "GET", ""}, {"a", "other", "GET", ""}},
			want:     map[string]float64{"a|other|GET|200": 3, "a|/x|GET|200": 1},
			overflow: map[string]float64{"endpoint": 1},
		},
		{
			name:     "an endpoint named other past the cap overflows",
			tune:     func(c *Config) { c.MaxEndpoints = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"a", "other", "GET", ""}, {"a", "/y", "GET", ""}, {"a", "other", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "a|other|GET|200": 3},
			overflow: map[string]float64{"endpoint": 3},
		},
		{
			name:     "a service named other within the cap is shared with overflowed services",
			tune:     func(c *Config) { c.MaxServices = 2 },
			events:   []req{{"other", "/x", "GET", ""}, {"a", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"b", "/y", "GET", ""}, {"other", "/y", "GET", ""}},
			want:     map[string]float64{"other|/x|GET|200": 2, "a|/x|GET|200": 1, "other|/y|GET|200": 2},
			overflow: map[string]float64{"service": 2},
		},
		{
			name:     "a service named other past the cap overflows only until other is kept",
			tune:     func(c *Config) { c.MaxServices = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"other", "/x", "GET", ""}, {"other", "/x", "GET", ""}, {"b", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "other|/x|GET|200": 3},
			overflow: map[string]float64{"service": 2},
		},
		{
			name:     "a service named other after an overflow does not count",
			tune:     func(c *Config) { c.MaxServices = 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"b", "/x", "GET", ""}, {"other", "/x", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "other|/x|GET|200": 2},
			overflow: map[string]float64{"service": 1},
		},
		{
			name:     "a service named other shares its endpoint cap with overflowed services",
			tune:     func(c *Config) { c.MaxServices, c.MaxEndpoints = 2, 1 },
			events:   []req{{"other", "/x", "GET", ""}, {"a", "/x", "GET", ""}, {"b", "/y", "GET", ""}, {"other", "/y", "GET", ""}},
			want:     map[string]float64{"other|/x|GET|200": 1, "a|/x|GET|200": 1, "other|other|GET|200": 2},
			overflow: map[string]float64{"service": 1, "endpoint": 2},
		},
		{
			name:     "service and endpoint named other within their caps are kept",
			tune:     func(c *Config) { c.MaxServices, c.MaxEndpoints = 1, 1 },
			events:   []req{{"other", "other", "GET", ""}, {"b", "/x", "GET", ""}, {"other", "other", "GET", ""}},
			want:     map[string]float64{"other|other|GET|200": 3},
			overflow: map[string]float64{"service": 1, "endpoint": 1},
		},
		{
			name:     "service and endpoint named other after overflows count the endpoint",
			tune:     func(c *Config) { c.MaxServices, c.MaxEndpoints = 1, 1 },
			events:   []req{{"a", "/x", "GET", ""}, {"b", "/y", "GET", ""}, {"c", "/z", "GET", ""}, {"other", "other", "GET", ""}},
			want:     map[string]float64{"a|/x|GET|200": 1, "other|/y|GET|200": 1, "other|other|GET|200": 2},
			overflow: map[string]float64{"service": 2, "endpoint": 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.tune != nil {
				tc.tune(&cfg)
			}
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg, cfg)
			for i, r := range tc.events {
				ev := event.Event{Time: time.Unix(100, 0), Service: r.service, Endpoint: r.endpoint,
					Method: r.method, Status: 200, ClientID: r.client, RequestID: fmt.Sprint(i)}
				m.Observe(&ev, time.Unix(101, 0))
			}
			got := map[string]float64{}
			for _, s := range gatherSeries(t, reg, "vigil_http_requests_total") {
				got[s.key] = s.value
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("series = %v, want %v", got, tc.want)
			}
			for _, label := range []string{"service", "endpoint", "method", "client", "series"} {
				if g := testutil.ToFloat64(m.overflow[label]); g != tc.overflow[label] {
					t.Errorf("overflow{label=%q} = %v, want %v", label, g, tc.overflow[label])
				}
			}
		})
	}
}

type series struct {
	key   string
	value float64
}

// gatherSeries returns name's series as "service|endpoint|method|code[|client]".
func gatherSeries(t *testing.T, reg *prometheus.Registry, name string) []series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []series
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range m.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			parts := []string{lv["service"], lv["endpoint"], lv["method"], lv["code"]}
			if _, ok := lv["client"]; ok {
				parts = append(parts, lv["client"])
			}
			out = append(out, series{strings.Join(parts, "|"), m.GetCounter().GetValue()})
		}
	}
	return out
}

func TestMetricsNeverLabelIPsOrUsers(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.ClientLabel = true
	m := NewMetrics(reg, cfg)
	ev := event.Event{Time: time.Unix(100, 0), Service: "a", Endpoint: "/x", Method: "GET", Status: 401,
		User: "victim@example.com", UserAgent: "evil-agent", ClientID: "c1", RequestID: "r1", HasLatency: true, LatencyMS: 12}
	m.Observe(&ev, time.Unix(101, 0))
	out, err := testutil.CollectAndFormat(reg, expfmt.TypeTextPlain, "vigil_http_requests_total", "vigil_http_request_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"victim", "evil-agent", "r1"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("metrics contain %q:\n%s", secret, out)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		tune func(*Config)
		want string // substring of the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"fetch batch zero", func(c *Config) { c.FetchBatch = 0 }, "fetch_batch"},
		{"ack pending below batch", func(c *Config) { c.MaxAckPending = 10 }, "max_ack_pending"},
		{"short retention", func(c *Config) { c.StreamMaxAge = time.Second }, "stream_max_age"},
		{"no services", func(c *Config) { c.MaxServices = 0 }, "max_services"},
		{"duplicate window above retention", func(c *Config) { c.DuplicateWindow = 8 * 24 * time.Hour }, "duplicate_window"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.tune(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestMetricsDurationOnlyWhereReported checks that the latency histogram
// has series only for endpoints whose events carry latency_ms, and that
// each observation lands in its own endpoint's series.
func TestMetricsDurationOnlyWhereReported(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, DefaultConfig())
	for i, ep := range []string{"/quiet", "/timed", "/timed", "/other-timed"} {
		ev := event.Event{Time: time.Unix(100, 0), Service: "a", Endpoint: ep, Method: "GET", Status: 200}
		if ep != "/quiet" {
			ev.HasLatency, ev.LatencyMS = true, float64(100*(i+1))
		}
		m.Observe(&ev, time.Unix(101, 0))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_http_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "endpoint" {
					got[l.GetValue()] = fmt.Sprintf("%d/%g", s.GetHistogram().GetSampleCount(), s.GetHistogram().GetSampleSum())
				}
			}
		}
	}
	want := map[string]string{"/timed": "2/0.5", "/other-timed": "1/0.4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("duration series (count/sum) = %v, want %v", got, want)
	}
}

// TestMetricsKeepCopies checks that no string Metrics keeps points into an
// event's message: the decoder's strings do (event.Decoder.SetAliasing),
// and a kept one would pin the whole message for the process's life.
func TestMetricsKeepCopies(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ClientLabel = true
	m := NewMetrics(prometheus.NewRegistry(), cfg)
	var msgs [][]byte
	inMessage := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		for _, b := range msgs {
			if first := uintptr(unsafe.Pointer(&b[0])); p >= first && p < first+uintptr(len(b)) {
				return true
			}
		}
		return false
	}
	// A new service, a new endpoint of a known service, a known pair, and
	// a new client: each path that records a label value.
	for i, r := range [][3]string{{"billing", "/a", "c1"}, {"billing", "/b", "c1"}, {"billing", "/b", "c1"}, {"billing", "/c", "c2"}} {
		msg := []byte(r[0] + r[1] + r[2])
		msgs = append(msgs, msg)
		at := func(from, n int) string { return unsafe.String(&msg[from], n) }
		ev := event.Event{Time: time.Unix(100, 0), Service: at(0, len(r[0])), Endpoint: at(len(r[0]), len(r[1])),
			ClientID: at(len(r[0])+len(r[1]), len(r[2])), Method: "GET", Status: 200, RequestID: fmt.Sprint(i)}
		m.Observe(&ev, time.Unix(101, 0))
	}
	var kept []string
	for s := range m.services {
		kept = append(kept, s)
	}
	for k := range m.clients {
		kept = append(kept, k)
	}
	for k, es := range m.endpoints {
		kept = append(kept, k[0], k[1], es.service, es.endpoint)
		for rk := range es.requests {
			kept = append(kept, rk.client)
		}
	}
	for sk := range m.reqSeries {
		kept = append(kept, sk.service, sk.endpoint, sk.client)
	}
	for _, s := range kept {
		if inMessage(s) {
			t.Errorf("Metrics keeps %q pointing into an event's message", s)
		}
	}
	if len(kept) < 10 {
		t.Fatalf("only %d kept strings checked: %q", len(kept), kept)
	}
}
