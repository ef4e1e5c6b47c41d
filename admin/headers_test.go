package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

var securityHeaders = map[string]string{
	"X-Content-Type-Options":  "nosniff",
	"X-Frame-Options":         "DENY",
	"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

func checkSecurityHeaders(t *testing.T, resp *http.Response, overTLS bool) {
	t.Helper()
	for k, v := range securityHeaders {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	hsts := resp.Header.Get("Strict-Transport-Security")
	switch {
	case overTLS && hsts != "max-age=31536000; includeSubDomains":
		t.Errorf("HSTS over TLS = %q", hsts)
	case !overTLS && hsts != "":
		t.Errorf("HSTS without TLS = %q", hsts)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
}

// TestHeadersOnEveryResponse covers every status the server produces.
func TestHeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 16 },
		func(o *Options) { o.Ready = func() error { return errors.New("NATS disconnected") } })
	tests := []struct {
		name       string
		identity   string
		method     string
		path       string
		body       string
		setup      func(*testBackend)
		wantStatus int
		wantCode   string // error code, "" for success
	}{
		{"ok", "read", "GET", "/api/v1/status", "", nil, 200, ""},
		{"healthz", "none", "GET", "/healthz", "", nil, 200, ""},
		{"metrics", "none", "GET", "/metrics", "", nil, 200, ""},
		{"not ready", "none", "GET", "/readyz", "", nil, 503, codeNotReady},
		{"unauthorized", "none", "GET", "/api/v1/alerts", "", nil, 401, codeUnauthorized},
		{"forbidden", "write", "GET", "/api/v1/rules", "", nil, 403, codeForbidden},
		{"not found", "none", "GET", "/nope", "", nil, 404, codeNotFound},
		{"not found under api", "admin", "GET", "/api/v1/secrets", "", nil, 404, codeNotFound},
		{"method not allowed", "admin", "DELETE", "/api/v1/status", "", nil, 405, codeMethodNotAllowed},
		{"too large", "write", "POST", "/api/v1/reload", strings.Repeat("x", 17), nil, 413, codeTooLarge},
		{"invalid config", "write", "POST", "/api/v1/reload", "", func(b *testBackend) { b.reloadErr = InvalidConfig(errors.New("rules.yaml:3: unknown key")) }, 422, "invalid_config"},
		{"backend error", "read", "GET", "/api/v1/status", "", func(b *testBackend) { b.statusErr = errInternalDetail }, 500, codeInternal},
		{"panic", "read", "GET", "/api/v1/status", "", func(b *testBackend) { b.statusErr, b.panicking = nil, true }, 500, codeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				f.backend.set(tt.setup)
			}
			resp, body := f.do(t, tt.identity, tt.method, tt.path, strings.NewReader(tt.body))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			checkSecurityHeaders(t, resp, false)
			if tt.wantCode != "" {
				checkErrorBody(t, resp, body, tt.wantCode)
			}
			for _, leak := range []string{"10.1.2.3", "internal detail", "exploded", "goroutine"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body leaks %q: %s", leak, body)
				}
			}
		})
	}
	t.Run("405 names the allowed methods", func(t *testing.T) {
		resp, _ := f.do(t, "admin", "PUT", "/api/v1/reload", nil)
		if got := resp.Header.Get("Allow"); got != "POST" {
			t.Fatalf("Allow = %q", got)
		}
	})
	t.Run("internal errors are logged with the request id", func(t *testing.T) {
		var found bool
		for _, l := range f.logs.lines(t, "admin backend call failed") {
			if l["request_id"] != nil && strings.Contains(l["err"].(string), "internal detail") {
				found = true
			}
		}
		if !found {
			t.Fatal("no log line for the backend error")
		}
		if len(f.logs.lines(t, "admin handler panicked")) != 1 {
			t.Fatal("no log line for the panic")
		}
	})
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		incoming string
		adopt    bool
	}{
		{"none", "", false},
		{"safe", "abc-123_X.y", true},
		{"too long", strings.Repeat("a", 65), false},
		{"unsafe characters", "a b<script>", false},
		{"injection attempt", "id\",\"admin\":\"true", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.incoming != "" {
				hdr = []string{"X-Request-Id", tt.incoming}
			}
			resp, body := f.do(t, "none", "GET", "/api/v1/status", nil, hdr...)
			got := resp.Header.Get("X-Request-Id")
			if tt.adopt != (got == tt.incoming) {
				t.Fatalf("X-Request-Id = %q for incoming %q", got, tt.incoming)
			}
			if !tt.adopt && (len(got) != 26 || seen[got]) {
				t.Fatalf("generated id %q is not a fresh 26-character id", got)
			}
			seen[got] = true
			checkErrorBody(t, resp, body, codeUnauthorized)
			var logged bool
			for _, l := range f.logs.lines(t, "admin auth failed") {
				logged = logged || l["request_id"] == got
			}
			if !logged {
				t.Fatalf("no log line carries request id %q", got)
			}
		})
	}
}
