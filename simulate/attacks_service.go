package simulate

import (
	"math/rand/v2"
)

// Attacks on a service's health: they change the answers of every request
// the service gets during their window (see effect), so they need
// background traffic.

// serviceKey sets an item's key to its chosen service.
func serviceKey(it *item) {
	it.keys = []map[string]string{{"service": it.service.name}}
	it.params["service"] = it.service.name
	it.params["baseline_5xx_percent"] = round4(it.service.errBase * 100)
}

// busy are the services with enough traffic for a share or a percentile
// to mean something within minutes (all but exports, about 1 req/s).
func (p *planner) busy() []*service {
	var out []*service
	for _, s := range p.w.cat.services {
		if s.name != "gateway" && s.name != "exports" {
			out = append(out, s)
		}
	}
	return out
}

// anyService are all services that have a health endpoint.
func (p *planner) anyService() []*service {
	return append(p.busy(), p.w.cat.byName["exports"])
}

func planErrorSpike(p *planner, r *rand.Rand, it *item) {
	lo := 4.0
	if p.o.Live {
		lo = 5 // a demo shows at least the 5× rise rules are written for
	}
	factor := uniform(r, lo, 10)
	it.dur, it.baseline, it.services, it.keyFn = seconds(uniform(r, 120, 600)), true, p.busy(), serviceKey
	setParams(it, "factor", factor)
	it.effects = func(it *item, _ *rand.Rand) []effect {
		// Extra 5xx so that the share is factor times the baseline.
		extra := it.service.errBase * (factor - 1) / (1 - it.service.errBase)
		return []effect{{kind: fxErrors, service: it.service.name, start: it.start, end: it.end, p: extra}}
	}
}

// planOutage fails 60-95 % of a service's requests for 1-5 minutes; a
// third of outages hit exports, the service of about 1 request a second.
func planOutage(p *planner, r *rand.Rand, it *item) {
	share := uniform(r, 0.6, 0.95)
	it.dur, it.baseline, it.keyFn = seconds(uniform(r, 60, 300)), true, serviceKey
	it.services = p.anyService()
	if chance(r, 1.0/3) {
		it.services = []*service{p.w.cat.byName["exports"]}
	}
	setParams(it, "failing_share", share)
	it.effects = func(it *item, _ *rand.Rand) []effect {
		return []effect{{kind: fxOutage, service: it.service.name, start: it.start, end: it.end, p: share}}
	}
}

func planLatency(p *planner, r *rand.Rand, it *item) {
	factor := uniform(r, 4, 10)
	it.dur, it.baseline, it.services, it.keyFn = seconds(uniform(r, 180, 600)), true, p.busy(), serviceKey
	setParams(it, "factor", factor)
	it.effects = func(it *item, _ *rand.Rand) []effect {
		return []effect{{kind: fxLatency, service: it.service.name, start: it.start, end: it.end, p: factor}}
	}
}

// attackSpecs plan each attack.
var attackSpecs = map[Attack]func(*planner, *rand.Rand, *item){
	BruteForce:         planBruteForce,
	LowAndSlow:         planLowAndSlow,
	CredentialStuffing: planStuffing,
	PasswordSpraying:   planSpraying,
	SpraySuccess:       planSpraySuccess,
	BotnetStuffing:     planBotnet,
	RotationIPv6:       planRotation(true),
	RotationIPv4:       planRotation(false),
	Distributed:        planDistributed,
	Takeover:           planTakeover,
	TokenAbuse:         planTokenAbuse,
	Scanning:           planScanning,
	ForcedBrowsing:     planForcedBrowsing,
	UnexpectedMethods:  planMethods,
	WellKnownUsers:     planWellKnown,
	HoneyEndpoint:      planHoneyEndpoint,
	HoneyAccount:       planHoneyAccount,
	ListedSource:       planListed,
	ErrorSpike:         planErrorSpike,
	Outage:             planOutage,
	LatencySlowdown:    planLatency,
}
