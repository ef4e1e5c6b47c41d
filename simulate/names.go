package simulate

import (
	"fmt"
	"strings"
)

// Attack names an attack the simulator can inject.
type Attack string

// The attacks `vigil simulate --attack` accepts; docs/simulate.md gives each
// one's parameter ranges and truth key.
const (
	BruteForce         Attack = "brute-force"             // fast guessing from one address
	LowAndSlow         Attack = "low-and-slow"            // ≤ 3 guesses a minute from one address for most of an hour
	CredentialStuffing Attack = "credential-stuffing"     // one address, one try per leaked user
	PasswordSpraying   Attack = "password-spraying"       // one address, one try per valid user, slowly
	SpraySuccess       Attack = "spray-success"           // spraying or stuffing that gets a success
	BotnetStuffing     Attack = "botnet-stuffing"         // thousands of addresses × one try
	RotationIPv6       Attack = "rotation-ipv6"           // guessing from addresses rotating inside one /64
	RotationIPv4       Attack = "rotation-ipv4"           // guessing from addresses rotating inside one /24
	Distributed        Attack = "distributed-brute-force" // 10-60 addresses against one account
	Takeover           Attack = "takeover"                // distributed attack, then a success from a fresh address
	TokenAbuse         Attack = "token-abuse"             // one client_id collecting 401/403 outside login
	Scanning           Attack = "scanning"                // hundreds of distinct 404 paths
	ForcedBrowsing     Attack = "forced-browsing"         // 403s across many endpoints
	UnexpectedMethods  Attack = "unexpected-methods"      // 405s: TRACE, PROPFIND and the like
	WellKnownUsers     Attack = "well-known-users"        // admin, root, test...
	HoneyEndpoint      Attack = "honey-endpoint"          // a touch of an operator's honey endpoint
	HoneyAccount       Attack = "honey-account"           // a login as an operator's honey account
	ListedSource       Attack = "listed-source"           // mildly bad traffic from an operator-listed CIDR
	ErrorSpike         Attack = "error-spike"             // a service's 5xx share 4-10× its baseline
	Outage             Attack = "outage"                  // most of a service's requests failing
	LatencySlowdown    Attack = "latency-degradation"     // a service's p95 4-10× its baseline, no errors
)

// Attacks lists every attack in the order scenarios plan them.
func Attacks() []Attack {
	return []Attack{BruteForce, LowAndSlow, CredentialStuffing, PasswordSpraying, SpraySuccess,
		BotnetStuffing, RotationIPv6, RotationIPv4, Distributed, Takeover, TokenAbuse, Scanning,
		ForcedBrowsing, UnexpectedMethods, WellKnownUsers, HoneyEndpoint, HoneyAccount,
		ListedSource, ErrorSpike, Outage, LatencySlowdown}
}

// attackAliases are names earlier versions accepted.
var attackAliases = map[string]Attack{"distributed": Distributed}

// Benign names a benign pattern that looks like an attack.
type Benign string

// The benign patterns `vigil simulate --benign` accepts.
const (
	OfficeNAT    Benign = "office-nat"    // hundreds to thousands of users behind one address
	CarrierNAT   Benign = "carrier-nat"   // thousands of users over a small address pool
	LoadTest     Benign = "load-test"     // one address at a high rate, ~0.1 % errors
	DeployBlip   Benign = "deploy-blip"   // a service at 100 % 503 for a few seconds
	TypoUser     Benign = "typo-user"     // four mistyped passwords, then a login
	HealthProbe  Benign = "health-probe"  // monitors polling /healthz every few seconds
	TrafficSurge Benign = "traffic-surge" // a service at 3-10× its volume, normal error share
	BatchJob     Benign = "batch-job"     // a stale password retried every few minutes
	Traveller    Benign = "traveller"     // failures from home, phone and hotel
	IPv6Privacy  Benign = "ipv6-privacy"  // a user rotating privacy addresses in a /64
	Crawler      Benign = "crawler"       // a crawler with a few 404s
)

// Benigns lists every benign pattern in the order scenarios plan them.
func Benigns() []Benign {
	return []Benign{OfficeNAT, CarrierNAT, LoadTest, DeployBlip, TypoUser, HealthProbe,
		TrafficSurge, BatchJob, Traveller, IPv6Privacy, Crawler}
}

// ParseAttacks parses a comma-separated list of attack names; "all" means
// every attack.
func ParseAttacks(s string) ([]Attack, error) {
	return parseNames(s, "attack", Attacks(), func(name string) (Attack, bool) {
		a, ok := attackAliases[name]
		return a, ok
	})
}

// ParseBenign parses a comma-separated list of benign pattern names; "all"
// means every pattern.
func ParseBenign(s string) ([]Benign, error) {
	return parseNames(s, "benign pattern", Benigns(), func(string) (Benign, bool) { return "", false })
}

func parseNames[T ~string](s, what string, all []T, alias func(string) (T, bool)) ([]T, error) {
	var out []T
	seen := map[T]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name == "all" {
			return all, nil
		}
		v, ok := alias(name)
		for _, a := range all {
			if string(a) == name {
				v, ok = a, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown %s %q; choose from all, %s", what, name, JoinNames(all))
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// JoinNames lists names separated by commas, for help and error texts.
func JoinNames[T ~string](names []T) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(n))
	}
	return b.String()
}
