package simulate

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigil-sec/vigil/event"
)

var partnerNames = []struct{ client, ua string }{
	{"partner-northwind-erp", "northwind-sync/3.2.1 (+https://northwind.example/bot)"},
	{"partner-contoso-crm", "Contoso-Connector/2024.11 Go-http-client/2.0"},
	{"partner-fabrikam-wms", "fabrikam-wms/7.4 okhttp/4.11.0"},
	{"partner-tailspin-bi", "python-httpx/0.27.2 tailspin-bi/1.9"},
	{"partner-wingtip-pos", "WingtipPOS/12.0 (Windows NT 10.0)"},
	{"partner-litware-tax", "litware-tax/5.0.3 Java/21.0.4"},
	{"partner-adatum-ship", "adatum-shipping/2.2 axios/1.7.7"},
	{"partner-proseware-mkt", "proseware/4.1 python-requests/2.32.3"},
}

// partner is one server-to-server integration: it takes a client
// credentials token every 15 minutes (sometimes a moment too late, which
// costs a 401), calls a few endpoints at a steady rate, and now and then
// requests an export and polls it until it is ready. It is a stepper.
type partner struct {
	w        *world
	r        *rand.Rand
	client   string
	ua       string
	addrs    []netip.Addr
	rate     float64
	until    time.Duration
	call     time.Duration // next ordinary call
	token    time.Duration // next token renewal
	late     bool          // the renewal came late: one 401 first
	poll     time.Duration // next export poll, never when none runs
	polls    int
	exportID string
}

func newPartner(w *world, r *rand.Rand, i int, rate float64, until time.Duration) *partner {
	n := partnerNames[i%len(partnerNames)]
	p := &partner{w: w, r: r, client: n.client, ua: n.ua, rate: rate, until: until, poll: never}
	for range between(r, 1, 2) {
		p.addrs = append(p.addrs, host4(r, bgPartners))
	}
	p.token = -seconds(uniform(r, 0, tokenTTL.Seconds()))
	for p.token < 0 {
		p.token += tokenTTL
	}
	p.call = expGap(r, rate)
	return p
}

func (p *partner) next() time.Duration {
	at := min(p.call, p.token, p.poll)
	if at >= p.until {
		return never
	}
	return at
}

func (p *partner) emit(ev *event.Event) {
	r, cat := p.r, p.w.cat
	ev.SourceIP, ev.ClientID, ev.UserAgent = pick(r, p.addrs), p.client, p.ua
	switch at := p.next(); {
	case at == p.token && !p.late && chance(r, 0.15):
		ep := p.pickCall()
		fillRequest(ev, r, ep, ep.path(r, false), 401)
		p.late, p.token = true, at+seconds(uniform(r, 0.02, 0.2))
	case at == p.token:
		fillRequest(ev, r, cat.token, cat.token.route, 200)
		p.late, p.token = false, at+tokenTTL-seconds(uniform(r, 0, 5))
	case at == p.poll:
		p.pollExport(ev, at)
	default:
		p.ordinary(ev, at)
	}
}

func (p *partner) ordinary(ev *event.Event, at time.Duration) {
	r, cat := p.r, p.w.cat
	p.call = at + expGap(r, p.rate)
	if p.poll == never && chance(r, 1/(p.rate*uniform(r, 20, 60))) {
		ep := cat.endpoint("exports", "POST", "/v1/exports")
		fillCall(ev, r, ep, false)
		if ev.Status == 202 {
			p.exportID, p.polls, p.poll = idExports.existing(r), between(r, 3, 15), at+5*time.Second
		}
		return
	}
	ep := p.pickCall()
	fillCall(ev, r, ep, false)
	if ev.Status == 404 && chance(r, 0.9) {
		fillRequest(ev, r, ep, ep.path(r, false), 200) // partners mostly ask for ids they just listed
	}
	if chance(r, 0.002) {
		ev.Status, ev.LatencyMS = 429, logNormal(r, 1, 0.3) // over its rate limit
	}
}

func (p *partner) pollExport(ev *event.Event, at time.Duration) {
	r, cat := p.r, p.w.cat
	p.polls--
	if p.polls > 0 {
		ep := cat.endpoint("exports", "GET", "/v1/exports/{id}")
		fillRequest(ev, r, ep, ep.pre+p.exportID, 200)
		p.poll = at + seconds(uniform(r, 4.5, 5.5))
		return
	}
	ep := cat.endpoint("exports", "GET", "/v1/exports/{id}/download")
	fillRequest(ev, r, ep, ep.pre+p.exportID+ep.post, ep.status(r, false))
	p.poll = never
}

var partnerCalls = [][3]string{
	{"orders", "GET", "/v1/orders"}, {"orders", "GET", "/v1/orders/{id}"},
	{"orders", "PATCH", "/v1/orders/{id}"}, {"billing", "GET", "/v1/invoices"},
	{"billing", "GET", "/v1/invoices/{id}"}, {"catalog", "GET", "/v1/products/{id}"},
	{"catalog", "GET", "/v1/products"},
}

func (p *partner) pickCall() *endpoint {
	c := pick(p.r, partnerCalls)
	return p.w.cat.endpoint(c[0], c[1], c[2])
}

// noise is the internet's background radiation: every few seconds an
// address somewhere probes a handful of well-known paths. It is a stepper.
type noise struct {
	w     *world
	r     *rand.Rand
	at    time.Duration
	until time.Duration
	left  int // requests left in the current visit
	addr  netip.Addr
	ua    string
}

func newNoise(w *world, r *rand.Rand, until time.Duration) *noise {
	return &noise{w: w, r: r, until: until, at: expGap(r, 1.0/20)}
}

func (n *noise) next() time.Duration {
	if n.at >= n.until {
		return never
	}
	return n.at
}

func (n *noise) emit(ev *event.Event) {
	r := n.r
	if n.left == 0 {
		n.left, n.addr, n.ua = between(r, 1, 6), host4(r, bgNoise), pick(r, scannerAgents)
	}
	fillRequest(ev, r, n.w.cat.unmatched, pick(r, probePaths), 404)
	ev.SourceIP, ev.UserAgent = n.addr, n.ua
	if n.left--; n.left > 0 {
		n.at += seconds(uniform(r, 0.2, 3))
	} else {
		n.at += expGap(r, 1.0/20)
	}
}

// probePaths are what internet-wide scanners ask every web server for.
var probePaths = []string{"/.env", "/.git/config", "/wp-login.php", "/wp-admin/", "/phpmyadmin/",
	"/admin", "/login", "/.aws/credentials", "/config.json", "/server-status", "/actuator/env",
	"/actuator/health", "/api/.env", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
	"/cgi-bin/luci/;stok=/locale", "/boaform/admin/formLogin", "/HNAP1/", "/solr/admin/info/system",
	"/.DS_Store", "/owa/auth/logon.aspx", "/remote/login", "/geoserver/web/", "/favicon.ico",
	"/robots.txt", "/sitemap.xml", "/.well-known/security.txt", "/xmlrpc.php", "/debug/default/view",
	"/_ignition/health-check", "/telescope/requests", "/v2/_catalog", "/console/", "/manager/html"}
