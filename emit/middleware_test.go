package emit

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// mwCase is one request through the middleware and the event it must give.
type mwCase struct {
	name    string
	opts    []MiddlewareOption
	pattern string // ServeMux pattern of the handler
	handler http.HandlerFunc
	request func(base string) *http.Request
	want    func(t *testing.T, ev event.Event)
}

func get(path string, header ...string) func(string) *http.Request {
	return func(base string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		return r
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func mustProxies(list ...string) []netip.Prefix {
	p, err := ParseTrustedProxies(list...)
	if err != nil {
		panic(err)
	}
	return p
}

func TestMiddlewareEvents(t *testing.T) {
	ns := startNATS(t)
	nc := ns.connect()
	for i, tc := range middlewareCases() {
		t.Run(tc.name, func(t *testing.T) {
			service := fmt.Sprintf("case-%d", i)
			e := newEmitter(t, nc, WithService(service), WithLinger(0))
			mux := http.NewServeMux()
			mux.Handle(tc.pattern, tc.handler)
			srv := httptest.NewServer(Middleware(e, tc.opts...)(mux))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			defer srv.Close()
			resp, err := srv.Client().Do(tc.request(srv.URL))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			testkit.WaitUntil(t, 10*time.Second, "the event", func() bool { return e.Stats().Published == 1 })
			var mine []storedMsg
			for _, m := range ns.readStream() {
				if m.subject == "vigil.events."+service {
					mine = append(mine, m)
				}
			}
			evs := decodeAll(t, mine, time.Now()) // Vigil's validator accepts it unchanged
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if !validRequestID(ev.RequestID) || !ev.HasLatency || ev.LatencyMS < 0 ||
				time.Since(ev.Time) > time.Minute {
				t.Errorf("event %+v: want a request id, a latency and a recent ts", ev)
			}
			tc.want(t, ev)
		})
	}
}

func middlewareCases() []mwCase {
	loopback := netip.MustParseAddr("127.0.0.1")
	return []mwCase{
		{
			name: "login failure with user, client and attrs", pattern: "POST /v1/auth/login",
			handler: func(w http.ResponseWriter, r *http.Request) {
				SetUser(r.Context(), "alice")
				SetClientID(r.Context(), "web-app")
				SetAttr(r.Context(), "mfa", "false")
				http.Error(w, "bad credentials, request "+RequestID(r.Context()), http.StatusUnauthorized)
			},
			request: func(base string) *http.Request {
				r, _ := http.NewRequest(http.MethodPost, base+"/v1/auth/login", strings.NewReader("user=alice"))
				r.Header.Set("User-Agent", "curl/8.0")
				return r
			},
			want: func(t *testing.T, ev event.Event) {
				want := event.Event{Method: "POST", Endpoint: "/v1/auth/login", Status: 401, Path: "/v1/auth/login",
					SourceIP: loopback, User: "alice", ClientID: "web-app", UserAgent: "curl/8.0"}
				checkFields(t, ev, want)
				if !maps.Equal(ev.Attrs, map[string]string{"mfa": "false"}) {
					t.Errorf("attrs %v", ev.Attrs)
				}
			},
		},
		{
			name: "route template from the pattern", pattern: "GET example.com/v1/items/{id}", handler: status(200),
			request: func(base string) *http.Request {
				r := get("/v1/items/42")(base)
				r.Host = "example.com"
				return r
			},
			want: func(t *testing.T, ev event.Event) {
				checkFields(t, ev, event.Event{Method: "GET", Endpoint: "/v1/items/{id}", Status: 200,
					Path: "/v1/items/42", SourceIP: loopback, UserAgent: "Go-http-client/1.1"})
			},
		},
		{
			name: "unmatched route", pattern: "GET /v1/items/{id}", handler: status(200),
			request: get("/wp-login.php"),
			want: func(t *testing.T, ev event.Event) {
				checkFields(t, ev, event.Event{Method: "GET", Endpoint: UnmatchedEndpoint, Status: 404,
					Path: "/wp-login.php", SourceIP: loopback, UserAgent: "Go-http-client/1.1"})
			},
		},
		{
			name: "X-Forwarded-For and X-Request-Id from an untrusted peer are ignored", pattern: "/",
			handler: status(200),
			request: get("/", "X-Forwarded-For", "203.0.113.9", "X-Request-Id", "chosen-by-client"),
			want: func(t *testing.T, ev event.Event) {
				if ev.SourceIP != loopback || ev.RequestID == "chosen-by-client" {
					t.Errorf("source_ip %v request_id %q: want the peer and a generated id", ev.SourceIP, ev.RequestID)
				}
			},
		},
		{
			name: "X-Forwarded-For and X-Request-Id through trusted proxies", pattern: "/",
			opts:    []MiddlewareOption{WithTrustedProxies(mustProxies("127.0.0.0/8", "10.0.0.0/8")...)},
			handler: status(200),
			request: get("/", "X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.2.3", "X-Request-Id", "edge-123"),
			want: func(t *testing.T, ev event.Event) {
				if ev.SourceIP != netip.MustParseAddr("203.0.113.9") || ev.RequestID != "edge-123" {
					t.Errorf("source_ip %v request_id %q: want 203.0.113.9 and edge-123", ev.SourceIP, ev.RequestID)
				}
			},
		},
		{
			name: "attacker-written text is cleaned to the schema", pattern: "/",
			handler: func(w http.ResponseWriter, r *http.Request) {
				SetUser(r.Context(), "\x00root\u0085"+strings.Repeat("é", 200))
			},
			request: get("/a%00b%C2%85c%FF?token=secret", "User-Agent", "\xff\xfeagent\t"+strings.Repeat("x", 600)),
			want: func(t *testing.T, ev event.Event) {
				if len(ev.UserAgent) > event.MaxUserAgent || len(ev.User) > event.MaxUser ||
					!strings.HasPrefix(ev.UserAgent, "\ufffd\ufffdagent\ufffd") ||
					!strings.HasPrefix(ev.User, "\ufffdroot\ufffd") || ev.Path != "/a%00b%C2%85c%FF" {
					t.Errorf("user %q path %q user agent %q: want cleaned and cut", ev.User, ev.Path, ev.UserAgent)
				}
			},
		},
		{
			name: "lower-case method is upper-cased", pattern: "/", handler: status(200),
			request: func(base string) *http.Request { r, _ := http.NewRequest("get", base+"/", nil); return r },
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "method", ev.Method, "GET") },
		},
		{
			name: "handler panic is a 500", pattern: "/",
			handler: func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) },
			request: get("/"),
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "status", ev.Status, 500) },
		},
		{
			name: "informational response then the final status", pattern: "/",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Link", "</style.css>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusNoContent)
			},
			request: get("/"),
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "status", ev.Status, 204) },
		},
		{
			name: "nothing written is a 200", pattern: "/", handler: func(http.ResponseWriter, *http.Request) {},
			request: get("/"),
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "status", ev.Status, 200) },
		},
		{
			name: "hijacked connection is a 101", pattern: "/",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				conn, brw, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_ = brw.Flush()
				conn.Close()
			},
			request: get("/"),
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "status", ev.Status, 101) },
		},
		{
			name: "caller-supplied route, user and client id", pattern: "/",
			opts: []MiddlewareOption{
				WithRoute(func(*http.Request) string { return "/custom/{x}" }),
				WithUser(func(r *http.Request) string { return r.Header.Get("X-Auth-User") }),
				WithClientID(func(r *http.Request) string { return r.Header.Get("X-Client") }),
				WithoutPath(),
				WithEnrich(func(r *http.Request, ev *event.Event) { ev.Attrs = map[string]string{"proto": r.Proto} }),
			},
			handler: status(403),
			request: get("/custom/7", "X-Auth-User", "bob", "X-Client", "cli"),
			want: func(t *testing.T, ev event.Event) {
				checkFields(t, ev, event.Event{Method: "GET", Endpoint: "/custom/{x}", Status: 403,
					SourceIP: loopback, User: "bob", ClientID: "cli", UserAgent: "Go-http-client/1.1"})
				checkEq(t, "attrs", fmt.Sprint(ev.Attrs), "map[proto:HTTP/1.1]")
			},
		},
		{
			name: "SetEndpoint wins over the pattern", pattern: "/",
			handler: func(w http.ResponseWriter, r *http.Request) { SetEndpoint(r.Context(), "/v2/{rest...}") },
			request: get("/v2/a/b"),
			want:    func(t *testing.T, ev event.Event) { checkEq(t, "endpoint", ev.Endpoint, "/v2/{rest...}") },
		},
	}
}

// checkFields compares the fields of got that a request determines; ts,
// request id, service and latency vary.
func checkFields(t *testing.T, got, want event.Event) {
	t.Helper()
	checkEq(t, "method", got.Method, want.Method)
	checkEq(t, "endpoint", got.Endpoint, want.Endpoint)
	checkEq(t, "status", got.Status, want.Status)
	checkEq(t, "path", got.Path, want.Path)
	checkEq(t, "source_ip", got.SourceIP, want.SourceIP)
	checkEq(t, "user", got.User, want.User)
	checkEq(t, "client_id", got.ClientID, want.ClientID)
	checkEq(t, "user_agent", got.UserAgent, want.UserAgent)
}

func checkEq[T comparable](t *testing.T, field string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", field, got, want)
	}
}

// TestSamplesPassThrough emits every valid event of Vigil's sample table and
// checks that what reaches the stream passes the validator and decodes to
// the same event.
func TestSamplesPassThrough(t *testing.T) {
	table := loadSampleTable(t)
	ns := startNATS(t)
	e := newEmitter(t, ns.connect(), WithMaxBatch(1))
	dec := event.NewDecoder(event.DefaultLimits())
	var want []event.Event
	for _, s := range table.Samples {
		if !s.WantValid {
			continue
		}
		var ev event.Event
		if err := dec.Decode([]byte(*s.Raw), s.Subject, table.Now, &ev); err != nil {
			t.Fatalf("sample %q: %v", s.Name, err)
		}
		ev.RequestID = fmt.Sprintf("%s-%d", ev.RequestID, len(want)) // one message each
		if len(ev.RequestID) > event.MaxRequestID {
			ev.RequestID = ev.RequestID[len(ev.RequestID)-event.MaxRequestID:]
		}
		want = append(want, ev)
		e.Emit(ev)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, ns.readStream(), table.Now)
	if len(got) != len(want) {
		t.Fatalf("stream holds %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameEvent(got[i], want[i]) {
			t.Errorf("event %d changed:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func sameEvent(a, b event.Event) bool {
	return a.Time.Equal(b.Time) && a.Service == b.Service && a.RequestID == b.RequestID &&
		a.Method == b.Method && a.Endpoint == b.Endpoint && a.Status == b.Status && a.Path == b.Path &&
		a.HasLatency == b.HasLatency && a.LatencyMS == b.LatencyMS && a.SourceIP == b.SourceIP &&
		a.User == b.User && a.ClientID == b.ClientID && a.UserAgent == b.UserAgent &&
		len(a.Attrs) == len(b.Attrs) && maps.Equal(a.Attrs, b.Attrs)
}
