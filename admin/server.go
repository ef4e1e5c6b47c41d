// Package admin owns Vigil's admin HTTP server: /metrics, /healthz, /readyz
// and the /api/v1 endpoints (status, alerts, rules, reload, silences), with
// the practices Vigil watches others for: bearer tokens stored as SHA-256 and
// compared in constant time, scopes, revocation by reload, TLS and mTLS with
// certificate reload, security headers on every response, per-client rate
// limits, body and header limits, timeouts, JSON errors without internals
// but with a request id, failed authentications counted and reported as
// events, and an audit log line for every admin action.
package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/privacy"
)

// Backend is what the admin API reads and commands; the daemon implements
// it. Errors are shown to clients only when they are (or wrap) a
// *ClientError; any other error becomes a generic 500 and a log line.
type Backend interface {
	// Status returns a JSON-encodable view of the daemon: version, uptime,
	// config hash, NATS state, stream and consumer info. Secrets in it
	// must be internal/secret values, which encode as "<secret>".
	Status(ctx context.Context) (any, error)
	// Alerts returns the alerts firing now, as notifications show them
	// (pseudonymised when privacy is on).
	Alerts(ctx context.Context) ([]detect.Alert, error)
	// Rules describes the loaded rules.
	Rules(ctx context.Context) ([]RuleInfo, error)
	// Baselines describes the baselines of the population groups (a
	// service, an endpoint) that baseline-relative rules compare with:
	// how much history each has and what it takes to fire now. Labels are
	// pseudonymised as alerts' are.
	Baselines(ctx context.Context) ([]detect.BaselineStat, error)
	// Reload re-reads and applies the config, keeping the old one on any
	// error; an invalid config is reported as InvalidConfig(err).
	Reload(ctx context.Context) error
}

// Options are the server's collaborators. Logger is required; the rest may
// be left zero.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // where the admin metrics go; nil: not exported
	Gatherer   prometheus.Gatherer   // served on /metrics; nil: no /metrics route
	// Ready backs /readyz: nil error is 200, else 503 with the error's text
	// as the reason. The endpoint is unauthenticated: keep reasons short
	// and free of internals ("NATS disconnected").
	Ready func() error
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// OnAuthFailure receives an event for every refused authentication,
	// with service "vigil-admin", for the daemon's own detection. It is
	// called on the request's goroutine and must not block.
	OnAuthFailure func(ev event.Event)
	// Privacy, when set, pseudonymises peer addresses in log lines.
	Privacy *privacy.Pseudonymizer
}

// Server is the admin HTTP server.
type Server struct {
	logger        *slog.Logger
	gatherer      prometheus.Gatherer
	ready         func() error
	now           func() time.Time
	onAuthFailure func(event.Event)
	privacy       *privacy.Pseudonymizer
	backend       Backend
	silences      SilenceBackend // nil when the backend keeps no silences
	cluster       ClusterBackend // nil when the backend is not a cluster member
	metrics       *metrics
	mux           *http.ServeMux
	handler       http.Handler

	mu    sync.Mutex // serialises Reload
	state atomic.Pointer[state]
}

// state is one config generation, swapped whole by Reload.
type state struct {
	cfg     Config
	tokens  *tokenSet
	limiter *limiter
	tls     *tls.Config // nil without TLS
}

// New validates cfg, reads the token hash and TLS files it names, registers
// the admin metrics and returns a server ready to Serve.
func New(cfg Config, b Backend, opts Options) (*Server, error) {
	if b == nil || opts.Logger == nil {
		return nil, errors.New("admin: New needs a Backend and Options.Logger")
	}
	s := &Server{
		logger:        opts.Logger,
		gatherer:      opts.Gatherer,
		ready:         opts.Ready,
		now:           opts.Now,
		onAuthFailure: opts.OnAuthFailure,
		privacy:       opts.Privacy,
		backend:       b,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if sb, ok := b.(SilenceBackend); ok {
		s.silences = sb
	}
	if cb, ok := b.(ClusterBackend); ok {
		s.cluster = cb
	}
	st, err := buildState(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	rs := s.routes()
	s.metrics, err = newMetrics(reg, rs,
		func() float64 { return float64(s.state.Load().cfg.RateLimit.MaxClients) },
		func() float64 { return float64(s.state.Load().limiter.size()) })
	if err != nil {
		return nil, err
	}
	s.setCertMetric(cfg)
	s.mux = s.newMux(rs)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Check runs every check New makes on cfg without serving anything: it
// validates cfg and reads the token hash files and the TLS certificate, key
// and client CAs, failing with the message New would give.
func Check(cfg Config) error {
	_, err := buildState(cfg, nil)
	return err
}

// buildState validates cfg and loads its files. The rate limiter's buckets
// carry over from old when its settings did not change.
func buildState(cfg Config, old *state) (*state, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tokens, err := loadTokens(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	st := &state{cfg: cfg, tokens: tokens}
	if old != nil && old.limiter.sameConfig(cfg.RateLimit) {
		st.limiter = old.limiter
	} else {
		st.limiter = newLimiter(cfg.RateLimit)
	}
	if cfg.TLS.Enabled() {
		if st.tls, _, err = loadTLS(cfg.TLS); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (s *Server) setCertMetric(cfg Config) {
	st := s.state.Load()
	if st.tls == nil {
		s.metrics.tlsExpiry.Set(0)
		return
	}
	leaf := st.tls.Certificates[0].Leaf
	s.metrics.tlsExpiry.Set(float64(leaf.NotAfter.Unix()))
	if left := leaf.NotAfter.Sub(s.now()); left < 14*24*time.Hour {
		s.logger.Warn("admin TLS certificate expires soon", "cert_file", cfg.TLS.CertFile, "not_after", leaf.NotAfter)
	}
}

// Handler returns the whole HTTP surface: /metrics, /healthz, /readyz and
// /api/v1/...
func (s *Server) Handler() http.Handler { return s.handler }

// Reload applies cfg: tokens (a removed token is refused from the next
// request on), TLS certificates and client CAs (for new connections), the
// rate limit, metrics_auth and body limit, all at once. On any error nothing
// changes. The listener's TLS on/off, header limit and timeouts are fixed
// while serving; changing them is an error that names the option.
func (s *Server) Reload(cfg Config) error {
	commit, err := s.PrepareReload(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareReload does the fallible part of Reload (checks, tokens, TLS
// files) and returns the function that puts cfg in force, so that a caller
// reloading several parts can prepare them all before changing any. Call
// commit at most once, before the next PrepareReload.
func (s *Server) PrepareReload(cfg Config) (commit func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	if err := checkFixed(old.cfg, cfg); err != nil {
		return nil, err
	}
	st, err := buildState(cfg, old)
	if err != nil {
		return nil, err
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.state.Store(st)
		s.setCertMetric(cfg)
		s.logger.Info("admin config applied", "tokens", len(cfg.Tokens), "tls", cfg.TLS.Enabled(), "mtls", cfg.TLS.ClientCAFile != "")
	}, nil
}

// checkFixed names the first option that reload cannot change.
func checkFixed(old, cfg Config) error {
	switch {
	case old.TLS.Enabled() != cfg.TLS.Enabled():
		return errors.New("admin.tls: TLS cannot be turned on or off by reload; restart vigil to apply it")
	case old.MaxHeaderBytes != cfg.MaxHeaderBytes:
		return fmt.Errorf("admin.max_header_bytes cannot be changed by reload (%d, new %d); restart vigil to apply it", old.MaxHeaderBytes, cfg.MaxHeaderBytes)
	case old.Timeouts != cfg.Timeouts:
		return errors.New("admin.timeouts cannot be changed by reload; restart vigil to apply them")
	}
	return nil
}

// Serve answers on ln (over TLS when configured) until ctx ends, then shuts
// down gracefully within timeouts.shutdown. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cfg := s.state.Load().cfg
	if cfg.TLS.Enabled() {
		ln = tls.NewListener(ln, listenerTLS(func() *tls.Config { return s.state.Load().tls }))
	} else if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		s.logger.Warn("admin API served without TLS on a non-loopback address; tokens cross the network in clear text", "addr", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		ReadTimeout:       cfg.Timeouts.Read,
		WriteTimeout:      cfg.Timeouts.Write,
		IdleTimeout:       cfg.Timeouts.Idle,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          log.New(serverErrorLog{s}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeouts.Shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed once Shutdown has begun
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// serverErrorLog receives net/http's own error lines: failed TLS handshakes
// are counted and logged at debug without the peer address (scanners make
// many), the rest at warn.
type serverErrorLog struct{ s *Server }

func (l serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if _, rest, ok := strings.Cut(msg, "TLS handshake error from "); ok {
		// "<peer addr>: <reason>": keep the reason, drop the address,
		// which may be personal data.
		if _, reason, ok := strings.Cut(rest, ": "); ok {
			msg = reason
		}
		l.s.metrics.tlsHandshakeErrors.Inc()
		l.s.logger.Debug("admin TLS handshake failed", "detail", msg)
		return len(p), nil
	}
	l.s.logger.Warn("admin http server error", "detail", msg)
	return len(p), nil
}
