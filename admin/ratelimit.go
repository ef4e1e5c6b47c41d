package admin

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client, with bounded memory: at most max
// clients are tracked. When the table is full, buckets that have refilled
// (so are indistinguishable from new ones) are dropped, at most once per
// second; if none has, new clients share one overflow bucket until room
// frees up, so spraying addresses cannot grow memory or escape limits.
type limiter struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	clients   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newLimiter(c RateLimitConfig) *limiter {
	return &limiter{
		limit:    rate.Limit(c.RequestsPerSecond),
		burst:    c.Burst,
		max:      c.MaxClients,
		clients:  make(map[string]*rate.Limiter),
		overflow: rate.NewLimiter(rate.Limit(c.RequestsPerSecond), c.Burst),
	}
}

// sameConfig reports whether l already enforces c, so reload can keep its state.
func (l *limiter) sameConfig(c RateLimitConfig) bool {
	return l.limit == rate.Limit(c.RequestsPerSecond) && l.burst == c.Burst && l.max == c.MaxClients
}

// allow takes one token from key's bucket at now. When none is left it
// returns false and how long until one will be.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.bucket(key, now)
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	if lim, ok := l.clients[key]; ok {
		return lim
	}
	if len(l.clients) >= l.max && now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, lim := range l.clients {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) >= l.max {
		return l.overflow
	}
	lim := rate.NewLimiter(l.limit, l.burst)
	l.clients[key] = lim
	return lim
}

// size returns the number of clients tracked.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientKey names the bucket of a request: its token when it carries a
// valid one, else its source address, IPv6 grouped by /64 (what one host or
// customer usually holds).
func clientKey(tok *token, ip netip.Addr) string {
	if tok != nil {
		return "token:" + tok.name
	}
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.Unmap().String()
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
