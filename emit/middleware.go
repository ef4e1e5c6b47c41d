package emit

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/vigil-sec/vigil/event"
)

// DefaultRequestIDHeader is the header a trusted proxy puts the request id in.
const DefaultRequestIDHeader = "X-Request-Id"

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithRoute sets a function that returns the route template of a request
// ("/v1/items/{id}"), for routers other than net/http's ServeMux; "" falls
// back to http.Request.Pattern. It runs after the handler, on the request
// the handler received.
func WithRoute(route func(*http.Request) string) MiddlewareOption {
	return func(m *middleware) { m.route = route }
}

// WithRequestIDHeader names the header that carries the request id set by
// your proxy or load balancer (default X-Request-Id); "" never reads one.
// The header is honoured only on requests that came from a trusted proxy
// (WithTrustedProxies) and only when it holds 1-128 visible ASCII
// characters; otherwise the middleware generates an id. A client must not
// choose its own id: Vigil deduplicates on it.
func WithRequestIDHeader(name string) MiddlewareOption {
	return func(m *middleware) { m.idHeader = http.CanonicalHeaderKey(name) }
}

// WithTrustedProxies lists the proxies whose X-Forwarded-For and request id
// headers are believed. Without it the client address is the TCP peer and
// X-Forwarded-For is ignored. See ParseTrustedProxies.
func WithTrustedProxies(prefixes ...netip.Prefix) MiddlewareOption {
	return func(m *middleware) { m.proxies = append(m.proxies, prefixes...) }
}

// WithUser sets a function that returns the user of a request when the
// handler did not call SetUser (for example from a header set by an
// authenticating proxy). It runs after the handler.
func WithUser(user func(*http.Request) string) MiddlewareOption {
	return func(m *middleware) { m.user = user }
}

// WithClientID sets a function that returns the API client of a request
// when the handler did not call SetClientID. It runs after the handler.
func WithClientID(clientID func(*http.Request) string) MiddlewareOption {
	return func(m *middleware) { m.clientID = clientID }
}

// WithoutPath leaves the raw path out of events, for services whose paths
// carry personal data; the route template is still sent. The query string
// is never sent.
func WithoutPath() MiddlewareOption {
	return func(m *middleware) { m.noPath = true }
}

// WithEnrich sets a function that may change each event before it is
// emitted, for fields the other options do not cover. It must be fast and
// must not keep ev.
func WithEnrich(enrich func(r *http.Request, ev *event.Event)) MiddlewareOption {
	return func(m *middleware) { m.enrich = enrich }
}

// WithMiddlewareClock sets the clock that stamps requests and measures
// their latency (default time.Now).
func WithMiddlewareClock(now func() time.Time) MiddlewareOption {
	return func(m *middleware) { m.now = now }
}

type middleware struct {
	em       *Emitter
	next     http.Handler
	route    func(*http.Request) string
	user     func(*http.Request) string
	clientID func(*http.Request) string
	enrich   func(*http.Request, *event.Event)
	idHeader string
	proxies  proxies
	noPath   bool
	now      func() time.Time
}

// Middleware returns net/http middleware that emits one event per request
// through em. It never changes the response and never waits for NATS.
// Wrap the ServeMux (or put it inside the mux, per route): both give the
// event the route's pattern.
func Middleware(em *Emitter, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	base := middleware{em: em, idHeader: DefaultRequestIDHeader, now: time.Now}
	for _, o := range opts {
		o(&base)
	}
	return func(next http.Handler) http.Handler {
		m := base
		m.next = next
		return &m
	}
}

// state is the per-request allocation: the request's context (it carries
// the handlers' notes), the response recorder and the notes, together.
type state struct {
	context.Context
	rec  recorder
	info requestInfo
}

// Value makes the notes reachable through the context, for SetUser & co.
func (st *state) Value(key any) any {
	if key == (infoKey{}) {
		return &st.info
	}
	return st.Context.Value(key)
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := m.now()
	ip, viaProxy := m.proxies.clientIP(r)
	st := &state{Context: r.Context(), rec: recorder{rw: w}}
	st.info.requestID = m.requestID(r, viaProxy)
	r = r.WithContext(st)
	completed := false
	defer func() {
		// Also on panic: the event says 500 and the panic goes on.
		m.emit(r, st, start, ip, !completed)
	}()
	m.next.ServeHTTP(&st.rec, r)
	completed = true
}

func (m *middleware) requestID(r *http.Request, viaProxy bool) string {
	if viaProxy && m.idHeader != "" {
		if v := r.Header[m.idHeader]; len(v) > 0 && validRequestID(v[0]) {
			return v[0]
		}
	}
	return nuid.Next()
}

func (m *middleware) emit(r *http.Request, st *state, start time.Time, ip netip.Addr, panicked bool) {
	latency := m.now().Sub(start)
	st.info.mu.Lock()
	ev := event.Event{
		Time:       start,
		RequestID:  st.info.requestID,
		Method:     r.Method,
		Endpoint:   st.info.endpoint,
		Status:     st.rec.finalStatus(panicked),
		LatencyMS:  float64(latency.Microseconds()) / 1000,
		HasLatency: true,
		SourceIP:   ip,
		User:       st.info.user,
		ClientID:   st.info.clientID,
		UserAgent:  firstValue(r.Header["User-Agent"]),
		Attrs:      st.info.attrs,
	}
	st.info.attrs = nil // the Emitter owns the map now
	st.info.mu.Unlock()
	if ev.Endpoint == "" && m.route != nil {
		ev.Endpoint = m.route(r)
	}
	if ev.Endpoint == "" {
		ev.Endpoint = patternPath(r.Pattern)
	}
	if !m.noPath {
		ev.Path = r.URL.EscapedPath() // as sent, without the query
	}
	if ev.User == "" && m.user != nil {
		ev.User = m.user(r)
	}
	if ev.ClientID == "" && m.clientID != nil {
		ev.ClientID = m.clientID(r)
	}
	if m.enrich != nil {
		m.enrich(r, &ev)
	}
	m.em.Emit(ev)
}

func firstValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// patternPath returns the path part of a ServeMux pattern
// ("[METHOD ][HOST]/PATH"): "GET example.com/items/{id}" gives
// "/items/{id}". The exact-match marker "{$}" is dropped: "/{$}" gives "/".
// An empty pattern (no route matched) stays empty.
func patternPath(p string) string {
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	if i := strings.IndexByte(p, '/'); i > 0 {
		p = p[i:]
	}
	return strings.TrimSuffix(p, "{$}")
}
