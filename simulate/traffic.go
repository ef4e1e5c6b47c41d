// Package simulate generates realistic API request events, with optional
// attacks mixed in, for demos, load tests and end-to-end tests. Output is
// deterministic for a given seed and clock.
package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// Attack names an attack pattern the generator can inject.
type Attack string

// The attacks `vigil simulate --attack` accepts.
const (
	BruteForce         Attack = "brute-force"         // one IP, one user, many failed logins, then a success
	CredentialStuffing Attack = "credential-stuffing" // one IP, many distinct users failing
	Distributed        Attack = "distributed"         // many IPs failing against one user
	ErrorSpike         Attack = "error-spike"         // one service answering 5xx to most requests
)

// Attacks lists every attack.
func Attacks() []Attack { return []Attack{BruteForce, CredentialStuffing, Distributed, ErrorSpike} }

// ParseAttacks parses a comma-separated list such as "brute-force,error-spike".
func ParseAttacks(s string) ([]Attack, error) {
	var out []Attack
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		ok := false
		for _, a := range Attacks() {
			if string(a) == name {
				out, ok = append(out, a), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown attack %q; choose from brute-force, credential-stuffing, distributed, error-spike", name)
		}
	}
	return out, nil
}

type endpoint struct {
	method, route string
	pathFn        func(r *rand.Rand) string
	weight        int
	baseMS        float64
}

type service struct {
	name      string
	endpoints []endpoint
	total     int
}

func idPath(prefix string) func(r *rand.Rand) string {
	return func(r *rand.Rand) string { return prefix + strconv.Itoa(r.IntN(90000)+10000) }
}

func fixed(p string) func(*rand.Rand) string { return func(*rand.Rand) string { return p } }

func defaultServices() []service {
	svcs := []service{
		{name: "auth", endpoints: []endpoint{
			{"POST", "/v1/auth/login", fixed("/v1/auth/login"), 30, 80},
			{"POST", "/v1/auth/refresh", fixed("/v1/auth/refresh"), 50, 15},
			{"POST", "/v1/auth/logout", fixed("/v1/auth/logout"), 10, 10},
		}},
		{name: "billing", endpoints: []endpoint{
			{"GET", "/v1/invoices", fixed("/v1/invoices"), 30, 40},
			{"GET", "/v1/invoices/{id}", idPath("/v1/invoices/"), 50, 25},
			{"POST", "/v1/invoices", fixed("/v1/invoices"), 10, 120},
			{"POST", "/v1/payments", fixed("/v1/payments"), 10, 200},
		}},
		{name: "catalog", endpoints: []endpoint{
			{"GET", "/v1/products", fixed("/v1/products"), 40, 30},
			{"GET", "/v1/products/{id}", idPath("/v1/products/"), 60, 12},
			{"GET", "/v1/search", fixed("/v1/search"), 20, 90},
		}},
		{name: "orders", endpoints: []endpoint{
			{"GET", "/v1/orders/{id}", idPath("/v1/orders/"), 50, 20},
			{"POST", "/v1/orders", fixed("/v1/orders"), 20, 150},
			{"DELETE", "/v1/orders/{id}", idPath("/v1/orders/"), 5, 60},
		}},
	}
	for i := range svcs {
		for _, e := range svcs[i].endpoints {
			svcs[i].total += e.weight
		}
	}
	return svcs
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15",
	"okhttp/4.12.0",
	"python-requests/2.32.3",
	"acme-mobile/5.4.1 (iOS 18.1)",
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	rng      *rand.Rand
	services []service
	attacks  []Attack
	seq      uint64
	prefix   string
	bfCount  int
	spiking  bool // ErrorSpike is among the attacks
}

// spikeService is the service the error-spike attack makes fail.
const spikeService = "billing"

// NewGenerator returns a generator for the given attacks, seeded by seed.
func NewGenerator(seed uint64, attacks []Attack) *Generator {
	g := &Generator{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		services: defaultServices(),
		attacks:  attacks,
		prefix:   fmt.Sprintf("sim-%x-", seed),
	}
	for _, a := range attacks {
		g.spiking = g.spiking || a == ErrorSpike
	}
	return g
}

// Normal fills ev with one ordinary request at time ts.
func (g *Generator) Normal(ts time.Time, ev *event.Event) {
	svc := &g.services[g.rng.IntN(len(g.services))]
	ep := svc.endpoints[0]
	for n, w := g.rng.IntN(svc.total), 0; ; {
		ep = svc.endpoints[w]
		if n < ep.weight {
			break
		}
		n -= ep.weight
		w++
	}
	status := g.normalStatus(ep)
	if g.spiking && svc.name == spikeService && g.rng.IntN(10) < 8 {
		status = 503 // the error-spike attack: billing fails most requests
	}
	g.fill(ev, ts, svc.name, ep, status)
	user := g.rng.IntN(5000)
	ev.User = "user" + strconv.Itoa(user) + "@example.com"
	ev.SourceIP = userIP(user)
	if g.rng.IntN(4) == 0 {
		ev.ClientID = "client-" + strconv.Itoa(g.rng.IntN(8))
	}
	ev.LatencyMS = math.Round(ep.baseMS*math.Exp(g.rng.NormFloat64()*0.5)*100) / 100
}

func (g *Generator) normalStatus(ep endpoint) int {
	p := g.rng.IntN(1000)
	switch {
	case ep.route == "/v1/auth/login" && p < 30: // a few mistyped passwords
		return 401
	case p < 15:
		return 404
	case p < 20:
		return 400
	case p < 22:
		return 500
	case ep.method == "POST":
		return 201
	default:
		return 200
	}
}

func (g *Generator) fill(ev *event.Event, ts time.Time, svc string, ep endpoint, status int) {
	ev.Reset()
	g.seq++
	ev.Time = ts
	ev.Service = svc
	ev.RequestID = g.prefix + strconv.FormatUint(g.seq, 36)
	ev.Method = ep.method
	ev.Endpoint = ep.route
	ev.Path = ep.pathFn(g.rng)
	ev.Status = status
	ev.HasLatency = true
	ev.LatencyMS = ep.baseMS
	ev.UserAgent = userAgents[g.rng.IntN(len(userAgents))]
}

// userIP maps a user number to a stable address in 100.64.0.0/10 (shared
// address space), so each simulated user keeps an address.
func userIP(user int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, 64 + byte(user>>16&0x3f), byte(user >> 8), byte(user)})
}
