package simulate

import (
	"math"
	"math/rand/v2"

	"github.com/vigil-sec/vigil/event"
)

// serverError draws a 5xx status: mostly 500s, then gateway errors.
func serverError(r *rand.Rand) int {
	switch u := r.Float64(); {
	case u < 0.5:
		return 500
	case u < 0.65:
		return 502
	case u < 0.85:
		return 503
	default:
		return 504
	}
}

// status draws the answer to an ordinary call of an authenticated client.
// cached says the client sends conditional requests (browsers), which
// earns 304s on reads.
func (ep *endpoint) status(r *rand.Rand, cached bool) int {
	if chance(r, ep.svc.errBase) {
		return serverError(r)
	}
	u := r.Float64()
	switch ep.kind {
	case kGet:
		return pickStatus(u, 200, 0.025, 404, 0.002, 403, cond(cached, 0.12), 304)
	case kRead, kList:
		return pickStatus(u, 200, 0.003, 400, cond(cached, 0.15), 304, 0, 0)
	case kCreate:
		return pickStatus(u, 201, 0.03, 422, 0.01, 400, 0.005, 409)
	case kUpdate:
		return pickStatus(u, 200, 0.02, 422, 0.01, 404, 0.005, 409)
	case kDelete:
		return pickStatus(u, 204, 0.03, 404, 0, 0, 0, 0)
	case kAction:
		if ep.route == "/v1/payments" {
			return pickStatus(u, 201, 0.03, 402, 0.015, 422, 0, 0) // declined cards
		}
		return pickStatus(u, 202, 0.01, 400, 0, 0, 0, 0)
	case kDownload:
		return pickStatus(u, 200, 0.01, 404, 0, 0, 0, 0)
	case kAdmin:
		return 200 // callers decide who is staff
	case kUnmatched:
		return 404
	case kLogout:
		return 204
	}
	return 200
}

func cond(ok bool, p float64) float64 {
	if ok {
		return p
	}
	return 0
}

// pickStatus returns s1 with probability p1, s2 with p2, s3 with p3 (u
// uniform in [0,1)), and ok otherwise.
func pickStatus(u float64, ok int, p1 float64, s1 int, p2 float64, s2 int, p3 float64, s3 int) int {
	switch {
	case u < p1:
		return s1
	case u < p1+p2:
		return s2
	case u < p1+p2+p3:
		return s3
	}
	return ok
}

// latency draws the latency of ep answering status, in ms: log-normal
// around the endpoint's median with an occasional slow tail; errors
// answered early (auth, validation, missing ids, an overloaded proxy) are
// fast and timeouts are slow.
func (ep *endpoint) latency(r *rand.Rand, status int) float64 {
	median, sigma := ep.median, ep.sigma
	switch {
	case status == 401 && ep.kind == kLogin:
		// Password checks take as long for a wrong password.
	case status == 401 || status == 403 || status == 405:
		median, sigma = 3, 0.5
	case status == 400 || status == 422:
		median *= 0.3
	case status == 404 || status == 304:
		median *= 0.5
	case status == 503 || status == 502:
		median, sigma = 4, 0.8
	case status == 504:
		median, sigma = 30_000, 0.05
	}
	v := logNormal(r, median, sigma)
	if status < 500 && chance(r, 0.008) {
		v *= uniform(r, 3, 15) // a slow tail: a cold cache, a lock, a GC pause
	}
	return math.Round(v*100) / 100
}

// fillRequest sets ev's request fields for a call of ep at path answered
// with status, drawing its latency. It leaves who called (address, user,
// agent, client) to the caller.
func fillRequest(ev *event.Event, r *rand.Rand, ep *endpoint, path string, status int) {
	ev.Service = ep.svc.name
	ev.Method = ep.method
	ev.Endpoint = ep.route
	ev.Path = path
	ev.Status = status
	ev.LatencyMS = ep.latency(r, status)
	ev.HasLatency = true
}

// fillCall fills an ordinary call of ep by an authenticated client: its
// status from the endpoint's mix, a path with a missing id for a 404.
func fillCall(ev *event.Event, r *rand.Rand, ep *endpoint, cached bool) {
	st := ep.status(r, cached)
	fillRequest(ev, r, ep, ep.path(r, st == 404), st)
}
