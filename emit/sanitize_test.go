package emit

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/event"
)

func TestCleanText(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"plain ASCII kept", "Mozilla/5.0 (X11)", 512, "Mozilla/5.0 (X11)"},
		{"valid UTF-8 kept", "jürgen", 256, "jürgen"},
		{"controls replaced", "a\x00b\tc\x7fd\u0085e", 256, "a\ufffdb\ufffdc\ufffdd\ufffde"},
		{"invalid UTF-8 replaced", "a\xffb", 256, "a\ufffdb"},
		{"cut to the limit", strings.Repeat("x", 10), 4, "xxxx"},
		{"cut at a character boundary", "aé", 2, "a"},
		{"replacement counts towards the limit", "\xff\xff", 5, "\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanText(tt.in, tt.limit)
			if got != tt.want || len(got) > tt.limit || !utf8.ValidString(got) {
				t.Errorf("cleanText(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
		})
	}
}

func TestCleanEndpointAndMethod(t *testing.T) {
	endpoints := []struct{ in, want string }{
		{"/v1/items/{id}", "/v1/items/{id}"},
		{"v1/items", "/v1/items"},
		{"/a b\tc", "/a_b_c"},
		{"/caf\xe9", "/caf_"},
		{"/" + strings.Repeat("a", 300), "/" + strings.Repeat("a", 255)},
	}
	for _, tt := range endpoints {
		if got := cleanEndpoint(tt.in); got != tt.want {
			t.Errorf("cleanEndpoint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	methods := []struct{ in, want string }{
		{"GET", "GET"}, {"", "GET"}, {"patch", "PATCH"}, {"M-SEARCH", "M-SEARCH"},
		{"1GET", "OTHER"}, {"GE T", "OTHER"}, {strings.Repeat("A", 33), "OTHER"},
	}
	for _, tt := range methods {
		if got := cleanMethod(tt.in); got != tt.want {
			t.Errorf("cleanMethod(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPatternPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/", "/"},
		{"/{$}", "/"},
		{"GET /v1/items/{id}", "/v1/items/{id}"},
		{"POST  /v1/auth/login", "/v1/auth/login"},
		{"example.com/v1/", "/v1/"},
		{"GET example.com/files/{path...}", "/files/{path...}"},
	}
	for _, tt := range tests {
		if got := patternPath(tt.in); got != tt.want {
			t.Errorf("patternPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	base := func() event.Event {
		return event.Event{Time: now, Service: "api", RequestID: "r1", Method: "GET", Endpoint: "/x", Status: 200}
	}
	tests := []struct {
		name   string
		mutate func(*event.Event)
		ok     bool
		check  func(event.Event) bool
	}{
		{"valid event unchanged", func(*event.Event) {}, true, func(ev event.Event) bool { return ev.RequestID == "r1" }},
		{"default service", func(ev *event.Event) { ev.Service = "" }, true,
			func(ev event.Event) bool { return ev.Service == "fallback" }},
		{"missing time set", func(ev *event.Event) { ev.Time = time.Time{} }, true,
			func(ev event.Event) bool { return ev.Time.Equal(now) }},
		{"missing request id generated", func(ev *event.Event) { ev.RequestID = "" }, true,
			func(ev event.Event) bool { return validRequestID(ev.RequestID) }},
		{"empty endpoint is unmatched", func(ev *event.Event) { ev.Endpoint = "" }, true,
			func(ev event.Event) bool { return ev.Endpoint == UnmatchedEndpoint }},
		{"NaN latency dropped", func(ev *event.Event) { ev.LatencyMS, ev.HasLatency = math.NaN(), true }, true,
			func(ev event.Event) bool { return !ev.HasLatency }},
		{"negative latency dropped", func(ev *event.Event) { ev.LatencyMS, ev.HasLatency = -1, true }, true,
			func(ev event.Event) bool { return !ev.HasLatency }},
		{"zone dropped", func(ev *event.Event) { ev.SourceIP = netip.MustParseAddr("fe80::1%eth0") }, true,
			func(ev event.Event) bool { return ev.SourceIP.Zone() == "" && ev.SourceIP.IsValid() }},
		{"attrs cut to 32 entries", func(ev *event.Event) {
			ev.Attrs = map[string]string{}
			for i := range 40 {
				ev.Attrs[string(rune('A'+i))] = "v"
			}
		}, true, func(ev event.Event) bool { return len(ev.Attrs) == 32 && ev.Attrs["A"] == "v" && ev.Attrs["h"] == "" }},
		{"attrs cleaned: empty key dropped, long keys cut", func(ev *event.Event) {
			ev.Attrs = map[string]string{"": "x", "\x00k": "v\x01"}
			for i := range 40 {
				ev.Attrs[strings.Repeat("k", 70)+string(rune('a'+i))] = "v"
			}
		}, true, func(ev event.Event) bool {
			return len(ev.Attrs) == 2 && ev.Attrs["\ufffdk"] == "v\ufffd" && ev.Attrs[strings.Repeat("k", 64)] == "v"
		}},
		{"bad service", func(ev *event.Event) { ev.Service = "API" }, false, nil},
		{"status out of range", func(ev *event.Event) { ev.Status = 600 }, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base()
			tt.mutate(&ev)
			ok := normalize(&ev, "fallback", clock)
			if ok != tt.ok || (ok && !tt.check(ev)) {
				t.Errorf("normalize = %v, event %+v", ok, ev)
			}
		})
	}
}
