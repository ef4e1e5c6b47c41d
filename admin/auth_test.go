package admin

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// matrixCase is one endpoint and the status each identity must get, in the
// order of identities: none, unknown, read, write, admin.
type matrixCase struct {
	method, path string
	want         [5]int
	body         string
}

var (
	readOnly  = [5]int{401, 401, 200, 403, 200}
	writeOnly = [5]int{401, 401, 403, 200, 200}
	open      = [5]int{200, 200, 200, 200, 200}
	created   = [5]int{401, 401, 403, 201, 201}
	noContent = [5]int{401, 401, 403, 204, 204}
)

const silenceBody = `{"matchers":[{"name":"rule","op":"=","value":"brute_force_source_ip"}],"ends_at":"2030-01-01T00:00:00Z","comment":"pen test, TICKET-42"}`

func TestAuthMatrix(t *testing.T) {
	tests := []struct {
		name        string
		metricsAuth bool
		cases       []matrixCase
	}{
		{"metrics open", false, []matrixCase{
			{"GET", "/healthz", open, ""},
			{"GET", "/readyz", open, ""},
			{"GET", "/metrics", open, ""},
			{"GET", "/api/v1/status", readOnly, ""},
			{"GET", "/api/v1/alerts", readOnly, ""},
			{"GET", "/api/v1/rules", readOnly, ""},
			{"GET", "/api/v1/baselines", readOnly, ""},
			{"POST", "/api/v1/reload", writeOnly, ""},
			{"GET", "/api/v1/silences", readOnly, ""},
			{"POST", "/api/v1/silences", created, silenceBody},
			{"DELETE", "/api/v1/silences/{id}", noContent, ""},
		}},
		{"metrics_auth on", true, []matrixCase{
			{"GET", "/healthz", open, ""},
			{"GET", "/readyz", open, ""},
			{"GET", "/metrics", readOnly, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.MetricsAuth = tt.metricsAuth })
			id := f.createSilence(t)
			for _, c := range tt.cases {
				for i, ident := range identities {
					t.Run(c.method+" "+c.path+" as "+ident, func(t *testing.T) {
						path := strings.ReplaceAll(c.path, "{id}", id)
						var body io.Reader
						if c.body != "" {
							body = strings.NewReader(c.body)
						}
						resp, respBody := f.do(t, ident, c.method, path, body)
						want := c.want[i]
						if resp.StatusCode != want {
							t.Fatalf("status %d, want %d; body %s", resp.StatusCode, want, respBody)
						}
						checkAuthResponse(t, resp, respBody)
						checkSecurityHeaders(t, resp, false)
					})
				}
			}
		})
	}
}

// checkAuthResponse checks what 401 and 403 answers must carry.
func checkAuthResponse(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("401 WWW-Authenticate = %q, want Bearer", h)
		}
		checkErrorBody(t, resp, body, codeUnauthorized)
	case http.StatusForbidden:
		if h := resp.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) {
			t.Errorf("403 WWW-Authenticate = %q", h)
		}
		checkErrorBody(t, resp, body, codeForbidden)
	}
}

func TestBearerParsing(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"bearer", []string{"Bearer abc"}, "abc"},
		{"scheme case-insensitive", []string{"bEaReR abc"}, "abc"},
		{"basic is not bearer", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, ""},
		{"no token", []string{"Bearer"}, ""},
		{"two headers", []string{"Bearer a", "Bearer b"}, ""},
		{"absent", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Authorization", v)
			}
			if got := bearer(h); got != tt.want {
				t.Fatalf("bearer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAuthFailureEvents(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name       string
		identity   string
		method     string
		path       string
		hdr        []string
		wantStatus int
		wantUser   string
		reason     string
	}{
		{"missing", "none", "GET", "/api/v1/status", nil, 401, "", reasonMissing},
		{"unknown", "unknown", "POST", "/api/v1/reload", []string{"User-Agent", "hydra/9.5"}, 401, "", reasonUnknown},
		{"scope", "read", "POST", "/api/v1/reload", nil, 403, "read-token", reasonScope},
		{"client request id is not the dedup key", "unknown", "GET", "/api/v1/rules", []string{"X-Request-Id", "same-every-time"}, 401, "", reasonUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.authEvents())
			reasonBefore := counterValue(t, f.reg, "vigil_admin_auth_failures_total", map[string]string{"reason": tt.reason})
			resp, _ := f.do(t, tt.identity, tt.method, tt.path, nil, tt.hdr...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d", resp.StatusCode)
			}
			evs := f.authEvents()
			if len(evs) != before+1 {
				t.Fatalf("%d events, want one more than %d", len(evs), before)
			}
			ev := evs[len(evs)-1]
			if ev.Service != "vigil-admin" || ev.Method != tt.method || ev.Endpoint != tt.path ||
				ev.Status != tt.wantStatus || ev.User != tt.wantUser || ev.SourceIP.String() != "127.0.0.1" ||
				!ev.Time.Equal(f.clock.Now()) || ev.RequestID == "" {
				t.Errorf("event = %+v", ev)
			}
			if tt.hdr != nil && tt.hdr[0] == "X-Request-Id" {
				if ev.RequestID == tt.hdr[1] || resp.Header.Get("X-Request-Id") != tt.hdr[1] {
					t.Errorf("event request id %q, response id %q", ev.RequestID, resp.Header.Get("X-Request-Id"))
				}
			} else if ev.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("event request id %q differs from the response's %q", ev.RequestID, resp.Header.Get("X-Request-Id"))
			}
			if tt.hdr != nil && tt.hdr[0] == "User-Agent" && ev.UserAgent != tt.hdr[1] {
				t.Errorf("UserAgent = %q", ev.UserAgent)
			}
			if got := counterValue(t, f.reg, "vigil_admin_auth_failures_total", map[string]string{"reason": tt.reason}); got != reasonBefore+1 {
				t.Errorf("auth failures{reason=%s} = %v, want %v", tt.reason, got, reasonBefore+1)
			}
		})
	}
	t.Run("no token value anywhere", func(t *testing.T) {
		logs := f.logs.String()
		for id, tok := range f.tokens {
			secretPart := strings.TrimPrefix(tok, TokenPrefix)
			if strings.Contains(logs, secretPart) {
				t.Errorf("log holds the %s token", id)
			}
			for _, ev := range f.authEvents() {
				if strings.Contains(string(ev.AppendJSON(nil)), secretPart) {
					t.Errorf("event holds the %s token: %+v", id, ev)
				}
			}
		}
		if n := len(f.logs.lines(t, "admin auth failed")); n != 4 {
			t.Errorf("%d auth failure log lines, want 4", n)
		}
	})
}

func TestRevocationByReload(t *testing.T) {
	f := newFixture(t, nil)
	current := f.srv.state.Load().cfg
	keep := slices.DeleteFunc(slices.Clone(current.Tokens), func(tc TokenConfig) bool { return tc.Name == "read-token" })

	tests := []struct {
		name    string
		apply   func() error
		wantErr bool
		read    int // status for the read token after
		admin   int
	}{
		{"before", func() error { return nil }, false, 200, 200},
		{"invalid config keeps the old tokens", func() error {
			bad := current
			bad.Tokens = append(slices.Clone(keep), TokenConfig{Name: "broken", SHA256: "not-hex", Scopes: []Scope{ScopeRead}})
			return f.srv.Reload(bad)
		}, true, 200, 200},
		{"unreadable sha256_file keeps the old tokens", func() error {
			bad := current
			bad.Tokens = append(slices.Clone(keep), TokenConfig{Name: "from-file", SHA256File: t.TempDir() + "/absent", Scopes: []Scope{ScopeRead}})
			return f.srv.Reload(bad)
		}, true, 200, 200},
		{"token removed", func() error {
			next := current
			next.Tokens = keep
			return f.srv.Reload(next)
		}, false, 401, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.apply(); (err != nil) != tt.wantErr {
				t.Fatalf("Reload error = %v, want error %v", err, tt.wantErr)
			}
			if resp, _ := f.do(t, "read", "GET", "/api/v1/status", nil); resp.StatusCode != tt.read {
				t.Errorf("read token: %d, want %d", resp.StatusCode, tt.read)
			}
			if resp, _ := f.do(t, "admin", "GET", "/api/v1/status", nil); resp.StatusCode != tt.admin {
				t.Errorf("admin token: %d, want %d", resp.StatusCode, tt.admin)
			}
		})
	}
}

func TestAuditLog(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name        string
		identity    string
		setup       func()
		wantStatus  int
		wantActor   string
		wantOutcome string
	}{
		{"reload", "write", nil, 200, "write-token", "success"},
		{"reload denied", "read", nil, 403, "read-token", "denied"},
		{"reload invalid config", "admin", func() { f.backend.set(func(b *testBackend) { b.reloadErr = InvalidConfig(errInternalDetail) }) }, 422, "admin-token", "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			before := len(f.logs.lines(t, "audit"))
			resp, _ := f.do(t, tt.identity, "POST", "/api/v1/reload", nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d", resp.StatusCode)
			}
			lines := f.logs.lines(t, "audit")
			if len(lines) != before+1 {
				t.Fatalf("%d audit lines, want %d", len(lines), before+1)
			}
			l := lines[len(lines)-1]
			want := map[string]any{
				"actor": tt.wantActor, "action": "reload", "outcome": tt.wantOutcome, "method": "POST",
				"route": "/api/v1/reload", "status": float64(tt.wantStatus), "remote_ip": "127.0.0.1",
				"request_id": resp.Header.Get("X-Request-Id"), "at": f.clock.Now().Format("2006-01-02T15:04:05Z07:00"),
			}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("audit %s = %v, want %v", k, l[k], v)
				}
			}
		})
	}
	t.Run("reads are not audited", func(t *testing.T) {
		before := len(f.logs.lines(t, "audit"))
		f.do(t, "read", "GET", "/api/v1/status", nil)
		if n := len(f.logs.lines(t, "audit")); n != before {
			t.Fatalf("a read wrote an audit line")
		}
	})
}
