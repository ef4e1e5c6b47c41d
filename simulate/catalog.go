package simulate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// epKind says how an endpoint answers, which decides its status mix.
type epKind uint8

const (
	kRead     epKind = iota // GET of one fixed resource (/v1/me)
	kList                   // GET of a collection
	kGet                    // GET of one resource by id
	kCreate                 // POST creating a resource
	kUpdate                 // PATCH/PUT
	kDelete                 // DELETE
	kAction                 // POST doing something (a payment, an export)
	kDownload               // GET of a large document
	kAdmin                  // staff only: 403 for everyone else
	kLogin
	kRefresh
	kLogout
	kToken
	kReset
	kHealth
	kUnmatched // no route: the gateway's /{unmatched}
)

// endpoint is one route of a service.
type endpoint struct {
	svc           *service
	method, route string
	kind          epKind
	ids           *idSpace // for routes with {id}
	pre, post     string   // route split around {id}
	weight        float64  // share of ordinary sessions' calls
	median, sigma float64  // latency of a success, ms, log-normal
}

// service is one service and its endpoints.
type service struct {
	name      string
	endpoints []*endpoint
	errBase   float64 // baseline 5xx share, drawn per seed
	health    *endpoint
}

// catalog is the simulated company's API.
type catalog struct {
	services  []*service
	byName    map[string]*service
	calls     []*endpoint // endpoints of ordinary sessions' calls
	cum       []float64   // cumulative weights of calls
	login     *endpoint
	refresh   *endpoint
	logout    *endpoint
	token     *endpoint
	reset     *endpoint
	unmatched *endpoint
}

// idSpace names a kind of resource: its ids in paths and how many exist.
type idSpace struct {
	prefix  string // "" for numeric ids
	n       uint64 // existing ids are 1..n
	skewed  bool   // popular ids are requested more (products)
	numeric bool
}

var (
	idProducts = &idSpace{n: 40_000, skewed: true, numeric: true}
	idUsers    = &idSpace{n: 60_000, numeric: true}
	idTeams    = &idSpace{n: 4_000, numeric: true}
	idOrders   = &idSpace{prefix: "ord_", n: 2_000_000}
	idInvoices = &idSpace{prefix: "in_", n: 900_000}
	idSubs     = &idSpace{prefix: "sub_", n: 80_000}
	idExports  = &idSpace{prefix: "exp_", n: 50_000}
)

// existing returns the id of a resource that exists.
func (s *idSpace) existing(r *rand.Rand) string {
	k := 1 + r.Uint64N(s.n)
	if s.skewed {
		k = 1 + r.Uint64N(k) // smaller ids are the popular ones
	}
	return s.format(k)
}

// missing returns the id of a resource that does not exist (any more);
// such ids rarely repeat.
func (s *idSpace) missing(r *rand.Rand) string { return s.format(s.n + 1 + r.Uint64N(1<<36)) }

func (s *idSpace) format(k uint64) string {
	if s.numeric {
		return strconv.FormatUint(k, 10)
	}
	// Scramble the index so that ids look random but stay distinct.
	x := (k*0x9E3779B97F4A7C15 ^ k>>7) & (1<<52 - 1)
	id := strconv.FormatUint(x|1<<51, 36)
	return s.prefix + id
}

// path builds a raw path of ep, with an existing id unless missing.
func (ep *endpoint) path(r *rand.Rand, missing bool) string {
	if ep.ids == nil {
		return ep.route
	}
	if missing {
		return ep.pre + ep.ids.missing(r) + ep.post
	}
	return ep.pre + ep.ids.existing(r) + ep.post
}

type epDef struct {
	method, route string
	kind          epKind
	ids           *idSpace
	weight        float64
	median, sigma float64
}

var serviceDefs = []struct {
	name string
	eps  []epDef
}{
	{"auth", []epDef{
		{"POST", "/v1/auth/login", kLogin, nil, 0, 120, 0.25},
		{"POST", "/v1/auth/refresh", kRefresh, nil, 0, 18, 0.4},
		{"POST", "/v1/auth/logout", kLogout, nil, 0, 9, 0.4},
		{"POST", "/v1/auth/token", kToken, nil, 0, 35, 0.3},
		{"POST", "/v1/auth/password-reset", kReset, nil, 0, 60, 0.4},
	}},
	{"accounts", []epDef{
		{"GET", "/v1/me", kRead, nil, 10, 14, 0.4},
		{"PATCH", "/v1/me", kUpdate, nil, 0.8, 30, 0.4},
		{"GET", "/v1/me/preferences", kRead, nil, 3, 10, 0.4},
		{"PUT", "/v1/me/preferences", kUpdate, nil, 0.4, 25, 0.4},
		{"GET", "/v1/users/{id}", kGet, idUsers, 3, 16, 0.45},
		{"GET", "/v1/teams/{id}/members", kGet, idTeams, 2, 45, 0.5},
		{"GET", "/v1/admin/users", kAdmin, nil, 0, 60, 0.5},
		{"GET", "/v1/admin/users/{id}", kAdmin, idUsers, 0, 20, 0.4},
		{"POST", "/v1/admin/users/{id}/impersonate", kAdmin, idUsers, 0, 40, 0.4},
		{"GET", "/v1/admin/audit-log", kAdmin, nil, 0, 150, 0.6},
		{"GET", "/v1/admin/config", kAdmin, nil, 0, 12, 0.4},
		{"PUT", "/v1/admin/config", kAdmin, nil, 0, 30, 0.4},
		{"GET", "/v1/admin/feature-flags", kAdmin, nil, 0, 10, 0.4},
	}},
	{"billing", []epDef{
		{"GET", "/v1/invoices", kList, nil, 5, 45, 0.5},
		{"GET", "/v1/invoices/{id}", kGet, idInvoices, 5, 28, 0.45},
		{"GET", "/v1/invoices/{id}/pdf", kDownload, idInvoices, 1.5, 380, 0.6},
		{"POST", "/v1/payments", kAction, nil, 1, 420, 0.5},
		{"GET", "/v1/payment-methods", kRead, nil, 2, 30, 0.45},
		{"POST", "/v1/payment-methods", kCreate, nil, 0.3, 350, 0.5},
		{"GET", "/v1/subscriptions/{id}", kGet, idSubs, 1, 25, 0.45},
	}},
	{"catalog", []epDef{
		{"GET", "/v1/products", kList, nil, 14, 40, 0.5},
		{"GET", "/v1/products/{id}", kGet, idProducts, 22, 14, 0.5},
		{"GET", "/v1/products/{id}/reviews", kGet, idProducts, 5, 35, 0.5},
		{"GET", "/v1/search", kList, nil, 10, 95, 0.7},
		{"GET", "/v1/categories", kRead, nil, 4, 8, 0.4},
	}},
	{"orders", []epDef{
		{"GET", "/v1/orders", kList, nil, 6, 55, 0.5},
		{"GET", "/v1/orders/{id}", kGet, idOrders, 7, 22, 0.45},
		{"POST", "/v1/orders", kCreate, nil, 1.5, 180, 0.5},
		{"PATCH", "/v1/orders/{id}", kUpdate, idOrders, 0.7, 60, 0.45},
		{"DELETE", "/v1/orders/{id}", kDelete, idOrders, 0.3, 45, 0.45},
		{"GET", "/v1/orders/{id}/tracking", kGet, idOrders, 2, 70, 0.8},
		{"GET", "/v1/cart", kRead, nil, 4, 20, 0.4},
		{"POST", "/v1/cart/items", kCreate, nil, 2.5, 35, 0.4},
	}},
	{"exports", []epDef{
		{"POST", "/v1/exports", kAction, nil, 0.045, 90, 0.4},
		{"GET", "/v1/exports/{id}", kGet, idExports, 0.12, 12, 0.4},
		{"GET", "/v1/exports/{id}/download", kDownload, idExports, 0.045, 900, 0.7},
	}},
	{"gateway", []epDef{
		{"GET", "/{unmatched}", kUnmatched, nil, 0, 3, 0.5},
	}},
}

// newCatalog builds the API with per-seed baseline error rates.
func newCatalog(r *rand.Rand) *catalog {
	c := &catalog{byName: map[string]*service{}}
	for _, def := range serviceDefs {
		// Baseline 5xx share: log-uniform in 0.1 %-1 %.
		s := &service{name: def.name, errBase: math.Exp(uniform(r, math.Log(0.001), math.Log(0.01)))}
		for _, d := range def.eps {
			s.endpoints = append(s.endpoints, newEndpoint(s, d))
		}
		if def.name != "gateway" {
			s.health = &endpoint{svc: s, method: "GET", route: "/healthz", kind: kHealth, median: 1.2, sigma: 0.5}
		}
		c.services = append(c.services, s)
		c.byName[s.name] = s
	}
	c.index()
	return c
}

func newEndpoint(s *service, d epDef) *endpoint {
	ep := &endpoint{svc: s, method: d.method, route: d.route, kind: d.kind, ids: d.ids,
		weight: d.weight, median: d.median, sigma: d.sigma}
	if pre, post, ok := strings.Cut(d.route, "{id}"); ok {
		ep.pre, ep.post = pre, post
	}
	return ep
}

func (c *catalog) index() {
	total := 0.0
	for _, s := range c.services {
		for _, ep := range s.endpoints {
			if ep.weight > 0 {
				total += ep.weight
				c.calls = append(c.calls, ep)
				c.cum = append(c.cum, total)
			}
		}
	}
	auth := c.byName["auth"]
	c.login, c.refresh, c.logout, c.token, c.reset = auth.endpoints[0], auth.endpoints[1], auth.endpoints[2], auth.endpoints[3], auth.endpoints[4]
	c.unmatched = c.byName["gateway"].endpoints[0]
}

// call picks the endpoint of an ordinary call by weight.
func (c *catalog) call(r *rand.Rand) *endpoint {
	x := r.Float64() * c.cum[len(c.cum)-1]
	i, _ := slices.BinarySearch(c.cum, x)
	return c.calls[min(i, len(c.calls)-1)]
}

// endpoint returns the endpoint of service svc with the given method and
// route; it panics when there is none, which is a bug in the simulator.
func (c *catalog) endpoint(svc, method, route string) *endpoint {
	for _, ep := range c.byName[svc].endpoints {
		if ep.method == method && ep.route == route {
			return ep
		}
	}
	panic("simulate: no endpoint " + svc + " " + method + " " + route)
}

// businessServices are the services ordinary calls go to, by name.
func (c *catalog) businessServices() []*service {
	var out []*service
	for _, s := range c.services {
		if s.name != "auth" && s.name != "gateway" {
			out = append(out, s)
		}
	}
	return out
}

// adminEndpoints are the staff-only endpoints.
func (c *catalog) adminEndpoints() []*endpoint {
	var out []*endpoint
	for _, ep := range c.byName["accounts"].endpoints {
		if ep.kind == kAdmin {
			out = append(out, ep)
		}
	}
	return out
}
