package simulate

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/event"
)

var login = endpoint{"POST", "/v1/auth/login", fixed("/v1/auth/login"), 1, 80}

// Attack fills ev with one event of attack a at time ts.
func (g *Generator) Attack(a Attack, ts time.Time, ev *event.Event) {
	switch a {
	case BruteForce:
		// One address guessing one account's password; every 40th try succeeds,
		// which is what the account-takeover rule looks for.
		g.bfCount++
		status := 401
		if g.bfCount%40 == 0 {
			status = 200
		}
		g.fill(ev, ts, "auth", login, status)
		ev.User = "alice@example.com"
		ev.SourceIP = netip.MustParseAddr("203.0.113.7")
		ev.UserAgent = "python-requests/2.32.3"
	case CredentialStuffing:
		// One address trying leaked credentials: a new user each time.
		g.fill(ev, ts, "auth", login, 401)
		ev.User = "leaked" + strconv.Itoa(g.rng.IntN(1_000_000)) + "@example.net"
		ev.SourceIP = netip.MustParseAddr("198.51.100.23")
		ev.UserAgent = "Mozilla/5.0 (compatible; stuffer/1.0)"
	case Distributed:
		// Many addresses (a botnet) guessing one account's password.
		g.fill(ev, ts, "auth", login, 401)
		ev.User = "admin@example.com"
		n := g.rng.IntN(60000)
		ev.SourceIP = netip.AddrFrom4([4]byte{198, 18 + byte(n>>16), byte(n >> 8), byte(n)})
	case ErrorSpike:
		// Extra billing traffic, most of it failing (Normal also fails most
		// billing requests while this attack runs).
		svc := &g.services[1]
		ep := svc.endpoints[g.rng.IntN(len(svc.endpoints))]
		status := 503
		if g.rng.IntN(10) < 2 {
			status = 200
		}
		g.fill(ev, ts, svc.name, ep, status)
		ev.User = "user" + strconv.Itoa(g.rng.IntN(5000)) + "@example.com"
		ev.SourceIP = userIP(g.rng.IntN(5000))
	}
}
