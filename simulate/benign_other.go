package simulate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// Benign patterns of machines: load tests, deploys, monitors, batch jobs
// and crawlers.

var loadAgents = []string{"k6/0.54.0 (https://k6.io/)", "Apache-JMeter/5.6.3", "locust/2.32.2", "Gatling/3.12.0", "vegeta/12.12.0"}

// planLoadTest is a load test from one address: virtual users logging in
// and browsing at a high rate, with ~0.1 % errors.
func planLoadTest(p *planner, r *rand.Rand, it *item) {
	addr := p.alloc.host(bnLoad)
	rate, vus := uniform(r, 20, 150), between(r, 50, 500)
	ua := pick(r, loadAgents)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 120, 600)), p.early(), ipKey(addr)
	setParams(it, "rate_per_s", rate, "virtual_users", vus, "source_ip", addr.String(), "user_agent", ua)
	it.build = func(it *item, r *rand.Rand) []stepper {
		cat := p.w.cat
		eps := []*endpoint{cat.endpoint("catalog", "GET", "/v1/products"), cat.endpoint("catalog", "GET", "/v1/products/{id}"),
			cat.endpoint("catalog", "GET", "/v1/search"), cat.endpoint("orders", "GET", "/v1/cart"), cat.endpoint("orders", "POST", "/v1/cart/items")}
		return []stepper{&paced{at: it.start, end: it.end, gap: func() time.Duration { return expGap(r, rate) }, fill: func(ev *event.Event, i int) {
			ep := pick(r, eps)
			if i%20 == 0 {
				ep = cat.login
			}
			status := okStatus(ep)
			if chance(r, 0.001) {
				status = serverError(r)
			}
			fillRequest(ev, r, ep, ep.path(r, false), status)
			ev.SourceIP, ev.UserAgent, ev.ClientID = addr, ua, "loadtest"
			ev.User = fmt.Sprintf("loadtest-vu%04d@acme-corp.com", r.IntN(vus))
		}}}
	}
}

// planDeployBlip is a rolling deploy: 1-3 moments of 2-10 s where a
// service answers every request with 503, a minute or a few apart.
func planDeployBlip(p *planner, r *rand.Rand, it *item) {
	n := between(r, 1, 3)
	lens, gaps, secs := make([]time.Duration, n), make([]time.Duration, n), make([]float64, n)
	var total time.Duration
	for i := range n {
		secs[i] = round3(uniform(r, 2, 10))
		lens[i] = seconds(secs[i])
		if i > 0 {
			gaps[i] = seconds(uniform(r, 60, 300))
		}
		total += gaps[i] + lens[i]
	}
	it.dur, it.earliest, it.services, it.keyFn = total, p.early(), p.anyService(), serviceKey
	setParams(it, "blips", n, "blip_s", secs)
	it.effects = func(it *item, _ *rand.Rand) []effect {
		var fx []effect
		t := it.start
		for i := range n {
			t += gaps[i]
			fx = append(fx, effect{kind: fxBlip, service: it.service.name, start: t, end: t + lens[i]})
			t += lens[i]
		}
		return fx
	}
}

var probeAgents = []string{"kube-probe/1.31", "UptimeRobot/2.0", "Datadog/Synthetics", "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", "Blackbox Exporter/0.25.0"}

// planHealthProbe is 1-3 monitors, each polling every service's /healthz
// every 2-15 seconds for the whole scenario.
func planHealthProbe(p *planner, r *rand.Rand, it *item) {
	n := between(r, 1, 3)
	type monitor struct {
		addr  netip.Addr
		every time.Duration
		ua    string
	}
	mons := make([]monitor, n)
	var intervals []float64
	for i := range mons {
		mons[i] = monitor{p.alloc.host(bnProbe), seconds(uniform(r, 2, 15)), pick(r, probeAgents)}
		it.keys = append(it.keys, map[string]string{"source_ip": mons[i].addr.String()})
		intervals = append(intervals, mons[i].every.Seconds())
	}
	it.whole = true
	setParams(it, "monitors", n, "interval_s", intervals)
	it.build = func(it *item, r *rand.Rand) []stepper {
		svcs := p.anyService()
		var out []stepper
		for _, m := range mons {
			out = append(out, &paced{at: seconds(uniform(r, 0, m.every.Seconds())), end: it.end,
				gap: func() time.Duration { return m.every/time.Duration(len(svcs)) + seconds(uniform(r, -0.01, 0.01)) },
				fill: func(ev *event.Event, i int) {
					h := svcs[i%len(svcs)].health
					fillRequest(ev, r, h, h.route, 200)
					ev.SourceIP, ev.UserAgent = m.addr, m.ua
				}})
		}
		return out
	}
}

// planBatchJob is a service account whose password was rotated but not in
// its job: one failed login every 2-5 minutes, all scenario long.
func planBatchJob(p *planner, r *rand.Rand, it *item) {
	user := "svc-" + pick(r, []string{"reports", "invoice-sync", "etl", "backup", "crm-export"}) + "@acme-corp.com"
	addr := p.alloc.host(bnBatch)
	period := uniform(r, 120, 300)
	it.whole, it.keys = true, append(userKey(user), ipKey(addr)...)
	setParams(it, "user", user, "period_s", period, "source_ip", addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		a := actor{addr: addr, ua: "acme-reports/2.3 python-requests/2.28.1", client: "batch-reports"}
		return []stepper{&paced{at: seconds(uniform(r, 0, period)), end: it.end,
			gap:  func() time.Duration { return seconds(period * uniform(r, 0.95, 1.05)) },
			fill: func(ev *event.Event, _ int) { fillLogin(ev, r, p.w, a, user, 401) }}}
	}
}

var crawlerAgents = []string{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"}

// planCrawler is a search engine crawling the public catalog; 1-3 % of the
// products it knows are gone (404).
func planCrawler(p *planner, r *rand.Rand, it *item) {
	addr := p.alloc.addr(func(r *rand.Rand) netip.Addr { return randomIn(r, bnCrawler) })
	rate, gone := uniform(r, 0.5, 3), uniform(r, 0.01, 0.03)
	ua := pick(r, crawlerAgents)
	it.dur, it.earliest, it.keys = seconds(uniform(r, 300, 1800)), p.early(), ipKey(addr)
	setParams(it, "rate_per_s", rate, "gone_share", gone, "source_ip", addr.String())
	it.build = func(it *item, r *rand.Rand) []stepper {
		cat := p.w.cat
		eps := []*endpoint{cat.endpoint("catalog", "GET", "/v1/products/{id}"), cat.endpoint("catalog", "GET", "/v1/products/{id}/reviews"),
			cat.endpoint("catalog", "GET", "/v1/categories"), cat.endpoint("catalog", "GET", "/v1/products")}
		return []stepper{&paced{at: it.start, end: it.end, gap: func() time.Duration { return jitterGap(r, rate, 0.5) }, fill: func(ev *event.Event, i int) {
			switch ep := pick(r, eps); {
			case i == 0:
				fillRequest(ev, r, cat.unmatched, "/robots.txt", 404)
			case ep.ids != nil && chance(r, gone):
				fillRequest(ev, r, ep, ep.path(r, true), 404)
			default:
				fillRequest(ev, r, ep, ep.path(r, false), 200)
			}
			ev.SourceIP, ev.UserAgent = addr, ua
		}}}
	}
}

// benignSpecs plan each benign pattern.
var benignSpecs = map[Benign]func(*planner, *rand.Rand, *item){
	OfficeNAT:    planOfficeNAT,
	CarrierNAT:   planCarrierNAT,
	LoadTest:     planLoadTest,
	DeployBlip:   planDeployBlip,
	TypoUser:     planTypoUser,
	HealthProbe:  planHealthProbe,
	TrafficSurge: planSurge,
	BatchJob:     planBatchJob,
	Traveller:    planTraveller,
	IPv6Privacy:  planIPv6Privacy,
	Crawler:      planCrawler,
}
