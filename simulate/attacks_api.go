package simulate

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// Attacks on the API beyond the login: stolen tokens, scanning, forbidden
// resources, odd methods, honey endpoints, listed sources.

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomID(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

// planTokenAbuse is a stolen or revoked API key tried against many
// endpoints: bursts of 401s and 403s for one client id.
func planTokenAbuse(p *planner, r *rand.Rand, it *item) {
	client := atClients + randomID(r, 16)
	var addrs []netip.Addr
	for range between(r, 1, 3) {
		addrs = append(addrs, p.alloc.host(atSingle))
	}
	rate, unauth, ok := p.rate(uniform(r, 0.2, 5)), uniform(r, 0.5, 1), uniform(r, 0, 0.1)
	ua := pick(r, toolAgents)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 120, 600)), p.early(), []map[string]string{{"client_id": client}}
	setParams(it, "client_id", client, "rate_per_s", rate, "share_401", unauth, "share_200", ok, "addresses", len(addrs))
	it.build = func(it *item, r *rand.Rand) []stepper {
		return []stepper{&paced{at: it.start, end: it.end, gap: bursty(r, rate), fill: func(ev *event.Event, _ int) {
			ep := p.w.cat.call(r)
			status := pickStatus(r.Float64(), 403, unauth, 401, ok, okStatus(ep), 0, 0)
			fillRequest(ev, r, ep, ep.path(r, false), status)
			ev.SourceIP, ev.ClientID, ev.UserAgent = pick(r, addrs), client, ua
		}}}
	}
}

// bursty returns gaps averaging 1/rate, in bursts of 5-40 requests at four
// times that rate separated by pauses.
func bursty(r *rand.Rand, rate float64) func() time.Duration {
	left := 0
	return func() time.Duration {
		if left > 0 {
			left--
			return expGap(r, 4*rate)
		}
		left = between(r, 5, 40)
		return seconds(0.75 * float64(left) / rate)
	}
}

var (
	scanDirs  = []string{"", "admin", "api", "backup", "old", "test", "dev", "config", "private", "internal", "static", "uploads", "v0", "v2", "debug", "cgi-bin", "tmp", "db", "logs", "assets", "wp-content", "console", "actuator", "swagger", "graphql", "staging", "bak", "data", "export", "files"}
	scanFiles = []string{".env", ".git/HEAD", "config.php", "web.config", "backup.zip", "db.sql", "dump.sql", "index.php", "login", "admin.php", "phpinfo.php", "swagger.json", "openapi.yaml", "settings.py", "credentials.json", "id_rsa", ".htpasswd", "server.key", "docker-compose.yml", "package.json", "composer.json", ".DS_Store", "info.php", "shell.php", "users.csv", "config.yml", "application.properties", "debug.log", "error_log", "heapdump", "env", "health", "metrics", "trace", "graphiql", "api-docs", "console", "jmx", "status", "test.txt"}
)

// planScanning is hundreds of distinct 404 paths from one address: a
// wordlist against the gateway, or ids enumerated on an API route.
func planScanning(p *planner, r *rand.Rand, it *item) {
	n, rate := between(r, 200, 1000), p.rate(uniform(r, 2, 20))
	a := p.attacker(r)
	a.ua, a.client = pick(r, scannerAgents), ""
	enumerate := chance(r, 0.4)
	it.dur, it.earliest, it.keys = countDur(n, rate), p.early(), ipKey(a.addr)
	setParams(it, "paths", n, "rate_per_s", rate, "mode", map[bool]string{true: "id-enumeration", false: "wordlist"}[enumerate], "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		fill := wordlist(p.w, r, a)
		if enumerate {
			fill = enumeration(p.w, r, a)
		}
		return []stepper{&paced{at: it.start, end: it.end, max: n, gap: func() time.Duration { return jitterGap(r, rate, 0.5) }, fill: fill}}
	}
}

func wordlist(w *world, r *rand.Rand, a actor) func(*event.Event, int) {
	order := r.Perm(len(scanDirs) * len(scanFiles))
	return func(ev *event.Event, i int) {
		k := order[i%len(order)]
		path := "/" + scanDirs[k/len(scanFiles)] + "/" + scanFiles[k%len(scanFiles)]
		if scanDirs[k/len(scanFiles)] == "" {
			path = "/" + scanFiles[k%len(scanFiles)]
		}
		status := pickStatus(r.Float64(), 404, 0.03, 403, 0.01, 401, 0, 0)
		fillRequest(ev, r, w.cat.unmatched, path, status)
		a.set(ev)
	}
}

func enumeration(w *world, r *rand.Rand, a actor) func(*event.Event, int) {
	ep := pick(r, []*endpoint{w.cat.endpoint("orders", "GET", "/v1/orders/{id}"), w.cat.endpoint("billing", "GET", "/v1/invoices/{id}")})
	a.user, a.client = "tester"+strconv.Itoa(r.IntN(10000))+"@"+pick(r, leakDomains), "web-app"
	return func(ev *event.Event, _ int) {
		status := pickStatus(r.Float64(), 404, 0.1, 403, 0, 0, 0, 0)
		fillRequest(ev, r, ep, ep.path(r, status == 404), status)
		a.set(ev)
	}
}

// planForcedBrowsing is a low-privilege account probing staff-only and
// other users' resources across many endpoints: 403s.
func planForcedBrowsing(p *planner, r *rand.Rand, it *item) {
	n, rate := between(r, 60, 300), p.rate(uniform(r, 0.5, 5))
	a := p.attacker(r)
	a.user, a.client = "qa."+randomID(r, 6)+"@"+pick(r, leakDomains), "web-app"
	var eps []*endpoint
	eps = append(eps, p.w.cat.adminEndpoints()...)
	for _, ep := range p.w.cat.calls {
		if ep.ids != nil {
			eps = append(eps, ep)
		}
	}
	eps = pickN(r, eps, between(r, 10, 25))
	it.dur, it.earliest, it.keys = countDur(n, rate), p.early(), ipKey(a.addr)
	setParams(it, "requests", n, "endpoints", len(eps), "rate_per_s", rate, "user", a.user, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return []stepper{&paced{at: it.start, end: it.end, max: n, gap: func() time.Duration { return jitterGap(r, rate, 0.6) }, fill: func(ev *event.Event, _ int) {
			ep := pick(r, eps)
			status := 403
			if ep.kind != kAdmin && chance(r, 0.25) {
				status = 404
			}
			fillRequest(ev, r, ep, ep.path(r, status == 404), status)
			a.set(ev)
		}}}
	}
}

var oddMethods = []string{"TRACE", "TRACK", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",
	"UNLOCK", "DEBUG", "CONNECT", "SEARCH", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"}

// planMethods is a scanner trying methods the API does not serve.
func planMethods(p *planner, r *rand.Rand, it *item) {
	n, rate := between(r, 20, 200), p.rate(uniform(r, 0.5, 5))
	a := p.attacker(r)
	a.ua, a.client = pick(r, scannerAgents), ""
	it.dur, it.earliest, it.keys = countDur(n, rate), p.early(), ipKey(a.addr)
	setParams(it, "requests", n, "rate_per_s", rate, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		return []stepper{&paced{at: it.start, end: it.end, max: n, gap: func() time.Duration { return jitterGap(r, rate, 0.5) }, fill: func(ev *event.Event, _ int) {
			ep := p.w.cat.call(r)
			method := pick(r, oddMethods)
			for method == ep.method {
				method = pick(r, oddMethods)
			}
			status := pickStatus(r.Float64(), 405, 0.15, 501, 0, 0, 0, 0)
			fillRequest(ev, r, ep, ep.path(r, false), status)
			ev.Method = method
			a.set(ev)
		}}}
	}
}

// planHoneyEndpoint is a visitor who probes a few paths and touches one
// of the operator's honey endpoints.
func planHoneyEndpoint(p *planner, r *rand.Rand, it *item) {
	route := pick(r, p.o.HoneyEndpoints)
	recon, touches := between(r, 0, 10), between(r, 1, 3)
	a := p.attacker(r)
	rate := uniform(r, 0.2, 2)
	it.dur, it.earliest, it.keys = countDur(recon+touches, rate), p.early(), ipKey(a.addr)
	setParams(it, "endpoint", route, "touches", touches, "recon_requests", recon, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		honey := &endpoint{svc: p.w.cat.byName["gateway"], method: "GET", route: route, kind: kRead, median: 20, sigma: 0.4}
		return []stepper{&paced{at: it.start, end: it.end, max: recon + touches, gap: func() time.Duration { return jitterGap(r, rate, 0.4) }, fill: func(ev *event.Event, i int) {
			if i < recon {
				fillRequest(ev, r, p.w.cat.unmatched, pick(r, probePaths), 404)
			} else {
				fillRequest(ev, r, honey, route, 403)
			}
			a.set(ev)
		}}}
	}
}

// planListed is a source from an operator's CIDR list doing something
// mildly bad: a few failed logins, a few 404s or a few 403s.
func planListed(p *planner, r *rand.Rand, it *item) {
	a := p.attacker(r)
	a.addr = p.alloc.addr(func(r *rand.Rand) netip.Addr { return randomIn(r, pick(r, p.o.ListedCIDRs)) })
	mode, n := pick(r, []string{"logins", "not-found", "forbidden"}), between(r, 3, 15)
	users := p.targets(r, between(r, 1, 5))
	rate := uniform(r, 0.05, 0.5)
	it.dur, it.earliest, it.keys = countDur(n, rate), p.early(), ipKey(a.addr)
	setParams(it, "mode", mode, "requests", n, "source_ip", a.addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		admin := p.w.cat.adminEndpoints()
		return []stepper{&paced{at: it.start, end: it.end, max: n, gap: func() time.Duration { return jitterGap(r, rate, 0.5) }, fill: func(ev *event.Event, i int) {
			switch mode {
			case "logins":
				fillLogin(ev, r, p.w, a, users[i%len(users)], 401)
				return
			case "not-found":
				fillRequest(ev, r, p.w.cat.unmatched, pick(r, probePaths), 404)
			default:
				ep := pick(r, admin)
				fillRequest(ev, r, ep, ep.path(r, false), 403)
			}
			a.set(ev)
		}}}
	}
}

// randomIn returns a random address of p other than its first and last.
func randomIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	first := p.Masked().Addr().AsSlice()
	for {
		b, last := slices.Clone(first), slices.Clone(first)
		for i := range b {
			free := byte(1<<max(0, min(8, (i+1)*8-p.Bits())) - 1)
			b[i] |= byte(r.IntN(256)) & free
			last[i] |= free
		}
		if !bytes.Equal(b, first) && !bytes.Equal(b, last) {
			ip, _ := netip.AddrFromSlice(b)
			return ip
		}
	}
}
