package admin

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/event"
)

// AuthFailureService is the service name of the events OnAuthFailure gets,
// so Vigil's own rules watch its admin API like any other service.
const AuthFailureService = "vigil-admin"

// maxUserAgent is the event schema's limit on user_agent.
const maxUserAgent = 512

// guard wraps a route with, in order: the per-client rate limit, the body
// size limit, authentication and scope check, and for writes the audit line.
// The rate limit comes first so that guessing tokens is throttled too.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := info(r)
		ri.route = rt.label()
		st := s.state.Load()
		presented := bearer(r.Header)
		var tok *token
		if presented != "" {
			tok = st.tokens.lookup(presented)
		}
		if rt.access != accessOpen && !s.allowRate(w, r, st, tok) {
			return
		}
		if !limitBody(w, r, st.cfg.MaxBodyBytes) {
			return
		}
		scope := rt.scope
		switch {
		case rt.access == accessOpen, rt.access == accessMetrics && !st.cfg.MetricsAuth:
			scope = ""
		case rt.access == accessMetrics:
			scope = ScopeRead
		}
		if scope != "" && !s.authorize(w, r, rt, scope, presented, tok) {
			return
		}
		ri.token = tok
		rt.handler(w, r)
		if rt.write() {
			s.auditLog(r, rt, "")
		}
	})
}

// limitOnly wraps the 404 and 405 answers with the rate limit, so scanning
// for paths is throttled like everything else.
func (s *Server) limitOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.state.Load()
		var tok *token
		if p := bearer(r.Header); p != "" {
			tok = st.tokens.lookup(p)
		}
		if s.allowRate(w, r, st, tok) {
			h(w, r)
		}
	})
}

// allowRate takes one token from the client's bucket, or answers 429 with
// Retry-After and returns false.
func (s *Server) allowRate(w http.ResponseWriter, r *http.Request, st *state, tok *token) bool {
	ok, wait := st.limiter.allow(clientKey(tok, info(r).ip), s.now())
	if ok {
		return true
	}
	s.metrics.rateLimited.Inc()
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	writeError(w, r, http.StatusTooManyRequests, codeRateLimited, "too many requests; retry after the number of seconds in Retry-After")
	return false
}

// limitBody refuses a declared body over max with 413 at once, and caps the
// rest: a handler reading past max gets an *http.MaxBytesError.
func limitBody(w http.ResponseWriter, r *http.Request, max int64) bool {
	if r.ContentLength > max {
		w.Header().Set("Connection", "close")
		writeError(w, r, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body over the %d-byte limit", max))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	return true
}

// authorize checks the token against scope; on failure it answers 401 or
// 403, counts, logs, audits denied writes and reports the event.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt route, scope Scope, presented string, tok *token) bool {
	switch {
	case presented == "":
		s.authFailed(r, rt, reasonMissing, nil, http.StatusUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		writeError(w, r, http.StatusUnauthorized, codeUnauthorized, "a bearer token is required (Authorization: Bearer <token>)")
		return false
	case tok == nil:
		s.authFailed(r, rt, reasonUnknown, nil, http.StatusUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="invalid_token"`)
		writeError(w, r, http.StatusUnauthorized, codeUnauthorized, "the bearer token is not valid")
		return false
	case !tok.allows(scope):
		s.authFailed(r, rt, reasonScope, tok, http.StatusForbidden)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="vigil", error="insufficient_scope", scope="%s"`, scope))
		writeError(w, r, http.StatusForbidden, codeForbidden, fmt.Sprintf("this token lacks the %q scope", scope))
		if rt.write() {
			info(r).token = tok
			s.auditLog(r, rt, "denied")
		}
		return false
	}
	return true
}

// authFailed counts a refused request, logs it and hands an event to
// OnAuthFailure. Neither carries the presented token: only a known
// token's name.
func (s *Server) authFailed(r *http.Request, rt route, reason string, tok *token, status int) {
	ri := info(r)
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	name := ""
	if tok != nil {
		name = tok.name
	}
	s.log(r).LogAttrs(r.Context(), slog.LevelWarn, "admin auth failed",
		slog.String("reason", reason), slog.String("route", rt.label()), slog.Int("status", status),
		slog.String("token", name), slog.String("remote_ip", s.logIP(ri.ip)))
	if s.onAuthFailure == nil {
		return
	}
	id := ri.id
	if ri.fromClient {
		// A client-chosen id must not become the event's dedup key, or
		// a brute forcer could repeat one id to be counted once.
		id = newRequestID()
	}
	s.onAuthFailure(event.Event{
		Time:      s.now(),
		Service:   AuthFailureService,
		RequestID: id,
		Method:    r.Method,
		Endpoint:  rt.path,
		Status:    status,
		SourceIP:  ri.ip,
		User:      name,
		UserAgent: truncateUTF8(strings.ToValidUTF8(r.UserAgent(), "\uFFFD"), maxUserAgent),
	})
}

// auditLog writes the one audit line of an admin action: who (token name),
// what (action, route, outcome), when, from where, and the request id.
// outcome "" is derived from the status written.
func (s *Server) auditLog(r *http.Request, rt route, outcome string) {
	ri := info(r)
	status := ri.rec.status
	if outcome == "" {
		outcome = "success"
		if status >= 400 {
			outcome = "failure"
		}
	}
	action := rt.action
	if action == "" {
		action = rt.label()
	}
	who := ""
	if ri.token != nil {
		who = ri.token.name
	}
	attrs := []any{
		"audit", true, "request_id", ri.id, "actor", who, "action", action, "outcome", outcome,
		"method", r.Method, "route", rt.path, "status", status,
		"remote_ip", s.logIP(ri.ip), "at", s.now().UTC(),
	}
	s.logger.Info("audit", append(attrs, ri.audit...)...)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
