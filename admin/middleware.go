package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// requestIDHeader carries the request id in both directions.
const requestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an incoming request id we adopt.
const maxRequestIDLen = 64

// reqInfo is what the server knows about one request; handlers reach it
// through the request context.
type reqInfo struct {
	id         string
	fromClient bool // id was taken from the client's X-Request-Id
	ip         netip.Addr
	route      string // metrics label
	token      *token // set once the request is authorised
	rec        *recorder
	audit      []any // attributes a handler adds to the audit line
}

type ctxKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

func requestID(r *http.Request) string { return info(r).id }

// newRequestID returns 128 random bits as 26 base32 characters.
func newRequestID() string { return rand.Text() }

// acceptableRequestID reports whether an incoming id is short and plain
// enough to echo and log: 1-64 letters, digits, '.', '_', '-'.
func acceptableRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// peerIP is the address of the TCP peer. X-Forwarded-For is never read:
// a client could write anything there.
func peerIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// setSecurityHeaders sets the headers every response carries, errors and
// 404s included. HSTS is sent only over TLS, as RFC 6797 requires.
func setSecurityHeaders(h http.Header, overTLS bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if overTLS {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
}

// recorder remembers the status a handler wrote, for metrics and audit.
type recorder struct {
	http.ResponseWriter
	status int
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// serveHTTP is the outermost handler: request id, security headers, panic
// recovery, metrics and the request log line, around the router.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	ri := &reqInfo{ip: peerIP(r), route: routeUnmatched}
	if id := r.Header.Get(requestIDHeader); acceptableRequestID(id) {
		ri.id, ri.fromClient = id, true
	} else {
		ri.id = newRequestID()
	}
	ri.rec = &recorder{ResponseWriter: w}
	h := w.Header()
	h.Set(requestIDHeader, ri.id)
	setSecurityHeaders(h, r.TLS != nil)
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))

	defer s.finish(r, ri, start)
	s.mux.ServeHTTP(ri.rec, r)
}

// finish recovers a handler panic as a 500, then counts and logs the request.
func (s *Server) finish(r *http.Request, ri *reqInfo, start time.Time) {
	if p := recover(); p != nil {
		if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(p)
		}
		s.log(r).Error("admin handler panicked", "route", ri.route, "panic", p)
		if ri.rec.status == 0 {
			writeError(ri.rec, r, http.StatusInternalServerError, codeInternal, "internal error; the daemon log has details under this request id")
		}
	}
	status := ri.rec.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.requests.WithLabelValues(ri.route, strconv.Itoa(status)).Inc()
	s.log(r).LogAttrs(r.Context(), slog.LevelDebug, "admin request",
		slog.String("method", r.Method), slog.String("route", ri.route), slog.Int("status", status),
		slog.String("remote_ip", s.logIP(ri.ip)), slog.Duration("duration", s.now().Sub(start)))
}

// log returns the server's logger with the request's id attached, so every
// line about a request carries the id its response carried.
func (s *Server) log(r *http.Request) *slog.Logger {
	return s.logger.With("request_id", requestID(r))
}

// logIP is how a peer address appears in logs: pseudonymised when
// source_ip pseudonymisation is on.
func (s *Server) logIP(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return s.privacy.Addr(ip).String()
}
