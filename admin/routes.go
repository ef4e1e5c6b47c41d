package admin

import (
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vigil-sec/vigil/detect"
)

// routeUnmatched labels requests that matched no route (404, 405, redirects).
const routeUnmatched = "unmatched"

// access says who may call a route.
type access int

const (
	accessOpen    access = iota // /healthz, /readyz: no token, no rate limit
	accessMetrics               // /metrics: open unless metrics_auth, then read
	accessScope                 // a token with the route's scope
)

// route is one endpoint of the admin API.
type route struct {
	method  string // GET, POST, DELETE
	path    string // ServeMux path pattern, e.g. /api/v1/silences/{id}
	access  access
	scope   Scope  // for accessScope
	action  string // audit action for writes, e.g. "reload"
	success int    // the status of a successful call
	handler http.HandlerFunc
}

// label is the route's metrics label and the event endpoint's method part.
func (rt route) label() string { return rt.method + " " + rt.path }

// write reports whether the route changes state (and so is audited).
func (rt route) write() bool { return rt.method != http.MethodGet }

// expectedCodes are the status codes whose metric series exist from start.
func (rt route) expectedCodes() []int {
	codes := []int{rt.success, http.StatusInternalServerError}
	switch rt.access {
	case accessOpen:
		if rt.path == "/readyz" {
			codes = append(codes, http.StatusServiceUnavailable)
		}
		return codes
	case accessMetrics:
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	default:
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	}
	if rt.write() {
		codes = append(codes, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	}
	return codes
}

// routes lists every endpoint the server answers.
func (s *Server) routes() []route {
	rs := []route{
		{method: http.MethodGet, path: "/healthz", access: accessOpen, success: http.StatusOK, handler: s.handleHealthz},
		{method: http.MethodGet, path: "/readyz", access: accessOpen, success: http.StatusOK, handler: s.handleReadyz},
		{method: http.MethodGet, path: "/api/v1/status", access: accessScope, scope: ScopeRead, success: http.StatusOK, handler: s.handleStatus},
		{method: http.MethodGet, path: "/api/v1/alerts", access: accessScope, scope: ScopeRead, success: http.StatusOK, handler: s.handleAlerts},
		{method: http.MethodGet, path: "/api/v1/rules", access: accessScope, scope: ScopeRead, success: http.StatusOK, handler: s.handleRules},
		{method: http.MethodGet, path: "/api/v1/baselines", access: accessScope, scope: ScopeRead, success: http.StatusOK, handler: s.handleBaselines},
		{method: http.MethodPost, path: "/api/v1/reload", access: accessScope, scope: ScopeWrite, action: "reload", success: http.StatusOK, handler: s.handleReload},
	}
	if s.gatherer != nil {
		h := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
		rs = append(rs, route{method: http.MethodGet, path: "/metrics", access: accessMetrics, success: http.StatusOK, handler: h.ServeHTTP})
	}
	return slices.Concat(rs, s.silenceRoutes(), s.clusterRoutes())
}

// newMux registers every route on a ServeMux, with a JSON 405 (and Allow)
// for known paths and a JSON 404 for everything else.
func (s *Server) newMux(rs []route) *http.ServeMux {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range rs {
		mux.Handle(rt.label(), s.guard(rt))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	for path, methods := range allowed {
		slices.Sort(methods)
		allow := strings.Join(methods, ", ")
		mux.Handle(path, s.limitOnly(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed; see the Allow header")
		}))
	}
	mux.Handle("/", s.limitOnly(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, codeNotFound, "no such endpoint")
	}))
	return mux
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			writeError(w, r, http.StatusServiceUnavailable, codeNotReady, err.Error())
			return
		}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	v, err := s.backend.Status(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "status", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, v)
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	alerts, err := s.backend.Alerts(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "alerts", err)
		return
	}
	if alerts == nil {
		alerts = []detect.Alert{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"alerts": alerts})
}

// RuleInfo describes one loaded rule for GET /api/v1/rules.
type RuleInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Severity    string `json:"severity"`
	Category    string `json:"category"`
	Description string `json:"description"`
	Evaluations uint64 `json:"evaluations"` // events evaluated by the rule since start
	Firing      int    `json:"firing"`      // alerts of the rule firing now
}

func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	rules, err := s.backend.Rules(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "rules", err)
		return
	}
	if rules == nil {
		rules = []RuleInfo{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"rules": rules})
}

// handleBaselines lists the baselines, all of them or, with ?rule=NAME,
// those of one rule.
func (s *Server) handleBaselines(w http.ResponseWriter, r *http.Request) {
	stats, err := s.backend.Baselines(r.Context())
	if err != nil {
		s.writeBackendError(w, r, "baselines", err)
		return
	}
	out := []detect.BaselineStat{}
	rule := r.URL.Query().Get("rule")
	for _, st := range stats {
		if rule == "" || st.Rule == rule {
			out = append(out, st)
		}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"baselines": out})
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := s.backend.Reload(r.Context()); err != nil {
		s.writeBackendError(w, r, "reload", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "reloaded"})
}
