package admin

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestRateLimitHTTP(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.RateLimit = RateLimitConfig{RequestsPerSecond: 0.5, Burst: 2, MaxClients: 100}
	})
	type step struct {
		advance   time.Duration
		identity  string
		path      string
		want      int
		wantRetry int // Retry-After seconds on 429
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"token bucket per token", []step{
			{0, "read", "/api/v1/status", 200, 0},
			{0, "read", "/api/v1/alerts", 200, 0},
			{0, "read", "/api/v1/rules", 429, 2},
			{0, "admin", "/api/v1/rules", 200, 0}, // another client
			{time.Second, "read", "/api/v1/rules", 429, 1},
			{time.Second, "read", "/api/v1/rules", 200, 0},
		}},
		{"unauthenticated by address, 404s included", []step{
			{time.Minute, "none", "/api/v1/status", 401, 0},
			{0, "unknown", "/nope", 404, 0},
			{0, "unknown", "/api/v1/status", 429, 2},
			{0, "none", "/api/v1/status", 429, 2},
		}},
		{"probes are never limited", []step{
			{0, "none", "/healthz", 200, 0},
			{0, "none", "/readyz", 200, 0},
			{0, "none", "/healthz", 200, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, s := range tt.steps {
				f.clock.Advance(s.advance)
				resp, body := f.do(t, s.identity, "GET", s.path, nil)
				if resp.StatusCode != s.want {
					t.Fatalf("step %d: status %d, want %d: %s", i, resp.StatusCode, s.want, body)
				}
				if s.want == 429 {
					if got := resp.Header.Get("Retry-After"); got != strconv.Itoa(s.wantRetry) {
						t.Fatalf("step %d: Retry-After = %q, want %d", i, got, s.wantRetry)
					}
					checkErrorBody(t, resp, body, codeRateLimited)
					checkSecurityHeaders(t, resp, false)
				}
			}
		})
	}
	if got := counterValue(t, f.reg, "vigil_admin_rate_limited_total", nil); got != 4 {
		t.Errorf("vigil_admin_rate_limited_total = %v, want 4", got)
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, l *limiter)
	}{
		{"full table drops refilled buckets", func(t *testing.T, l *limiter) {
			for i := range 3 {
				if ok, _ := l.allow("c"+strconv.Itoa(i), now); !ok {
					t.Fatal("first request refused")
				}
			}
			later := now.Add(time.Minute) // every bucket has refilled
			if ok, _ := l.allow("new", later); !ok || l.size() != 1 {
				t.Fatalf("ok=%v size=%d, want the refilled buckets dropped", ok, l.size())
			}
		}},
		{"busy table sends newcomers to one shared bucket", func(t *testing.T, l *limiter) {
			for i := range 3 {
				l.allow("c"+strconv.Itoa(i), now)
			}
			t1 := now.Add(10 * time.Millisecond)
			if ok, _ := l.allow("x", t1); !ok {
				t.Fatal("first overflow request refused")
			}
			if ok, _ := l.allow("y", t1); ok {
				t.Fatal("second newcomer got its own bucket; want the shared one, empty")
			}
			if l.size() != 3 {
				t.Fatalf("size %d, want 3", l.size())
			}
		}},
		{"retry after reflects the refill time", func(t *testing.T, l *limiter) {
			l.allow("a", now)
			ok, wait := l.allow("a", now)
			if ok || wait != time.Second || retryAfterSeconds(wait) != 1 {
				t.Fatalf("ok=%v wait=%v", ok, wait)
			}
			if ok, _ := l.allow("a", now.Add(time.Second)); !ok {
				t.Fatal("refused after refill; a refused request must not consume")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newLimiter(RateLimitConfig{RequestsPerSecond: 1, Burst: 1, MaxClients: 3}))
		})
	}
}

func TestClientKey(t *testing.T) {
	tok := &token{name: "grafana"}
	tests := []struct {
		name string
		tok  *token
		ip   string
		want string
	}{
		{"token wins", tok, "192.0.2.1", "token:grafana"},
		{"ipv4", nil, "192.0.2.1", "ip:192.0.2.1"},
		{"ipv4-mapped", nil, "::ffff:192.0.2.1", "ip:192.0.2.1"},
		{"ipv6 grouped by /64", nil, "2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clientKey(tt.tok, netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Fatalf("clientKey = %q, want %q", got, tt.want)
			}
		})
	}
}
