package simulate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
)

// Options configure a scenario. Zero values take the defaults, except
// Rate, where 0 means no background traffic.
type Options struct {
	Seed     uint64
	Start    time.Time     // t0, the time of offset 0; default DefaultStart
	Duration time.Duration // default 1h
	Rate     float64       // background events per second (DefaultRate is realistic); 0: no background
	Users    int           // population; default 50,000
	Attacks  []Attack
	Benign   []Benign
	// AttackRate, when > 0, replaces the drawn rate (events/s) of every
	// attack paced by a rate.
	AttackRate float64
	// BaselineWarmup is the background history before attacks that are
	// judged against a baseline (error-spike, outage, latency-degradation,
	// botnet-stuffing) may start; default 15m.
	BaselineWarmup time.Duration
	HoneyEndpoints []string       // default DefaultHoneyEndpoints
	HoneyAccounts  []string       // default DefaultHoneyAccounts
	ListedCIDRs    []netip.Prefix // default DefaultListedCIDRs
	// Live places every attack and pattern as early as it may start,
	// for a demo on a running daemon, instead of spreading them.
	Live bool
}

// Defaults of Options.
var (
	DefaultStart          = time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)
	DefaultHoneyEndpoints = []string{"/v1/internal/backup", "/v1/admin/debug/vars"}
	DefaultHoneyAccounts  = []string{"backup-admin@acme-corp.com", "svc-legacy-sync@acme-corp.com"}
	DefaultListedCIDRs    = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")}
)

const (
	defaultDuration = time.Hour
	DefaultRate     = 300 // background events per second of a realistic scenario
	defaultUsers    = 50_000
	baselineWarmup  = 15 * time.Minute
	liveHorizon     = 30 * 24 * time.Hour // "until interrupted"
)

func (o Options) withDefaults() Options {
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Duration == 0 && !o.Live {
		o.Duration = defaultDuration
	}
	if o.Users == 0 {
		o.Users = defaultUsers
	}
	if o.BaselineWarmup == 0 {
		o.BaselineWarmup = baselineWarmup
	}
	if o.HoneyEndpoints == nil {
		o.HoneyEndpoints = DefaultHoneyEndpoints
	}
	if o.HoneyAccounts == nil {
		o.HoneyAccounts = DefaultHoneyAccounts
	}
	if o.ListedCIDRs == nil {
		o.ListedCIDRs = DefaultListedCIDRs
	}
	return o
}

// Validate reports what is wrong with o and how to fix it.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Rate < 0 || o.AttackRate < 0:
		return errors.New("rates must not be negative")
	case o.Duration < 0:
		return errors.New("duration must not be negative")
	case !o.Live && o.Duration < time.Minute:
		return fmt.Errorf("duration %s is too short for a scenario: use a longer one, at least 1m (the default is 1h)", o.Duration)
	case o.Users < 1000 || o.Users > 5_000_000:
		return fmt.Errorf("users %d: use 1,000 to 5,000,000 (the default is 50,000)", o.Users)
	case o.Rate == 0 && len(o.Attacks) == 0 && len(o.Benign) == 0:
		return errors.New("nothing to generate: set a rate, an attack or a benign pattern")
	case o.BaselineWarmup < 0:
		return errors.New("baseline warm-up must not be negative")
	}
	if o.Rate == 0 {
		for _, a := range o.Attacks {
			if a == ErrorSpike || a == Outage || a == LatencySlowdown {
				return fmt.Errorf("attack %s changes the background traffic of a service: set a rate above 0", a)
			}
		}
	}
	return o.validateHoney()
}

func (o Options) validateHoney() error {
	for _, e := range o.HoneyEndpoints {
		if !strings.HasPrefix(e, "/") || strings.ContainsAny(e, " \t\r\n") {
			return fmt.Errorf("honey endpoint %q must be a route starting with / and without spaces", e)
		}
		for _, s := range serviceDefs {
			for _, d := range s.eps {
				if d.route == e {
					return fmt.Errorf("honey endpoint %q is a route ordinary users call: choose a route nobody uses", e)
				}
			}
		}
	}
	for _, a := range o.HoneyAccounts {
		if a == "" || len(a) > 256 {
			return fmt.Errorf("honey account %q must be 1 to 256 bytes", a)
		}
	}
	for _, p := range o.ListedCIDRs {
		if !p.IsValid() || p.Bits() > p.Addr().BitLen()-2 {
			return fmt.Errorf("listed CIDR %s must be a network of at least 4 addresses", p)
		}
	}
	return nil
}

// item is one attack or benign pattern of a scenario: its truth and how
// to generate it.
type item struct {
	name     string
	attack   bool
	id       string
	keys     []map[string]string // the first is the truth key; benign patterns may have more
	start    time.Duration
	end      time.Duration
	dur      time.Duration
	earliest time.Duration // it may not start before
	tail     time.Duration // it should end this long before the scenario does
	whole    bool          // it lasts the whole scenario
	baseline bool          // it is judged against a service's baseline
	services []*service    // candidates, for an item keyed by a service
	service  *service      // the one chosen
	keyFn    func(*item)   // sets keys once the service is chosen
	params   map[string]any
	build    func(it *item, r *rand.Rand) []stepper
	effects  func(it *item, r *rand.Rand) []effect
}

// Scenario is a planned stretch of traffic: background, attacks and
// benign patterns with their parameters and times. It generates the same
// events every time it is streamed.
type Scenario struct {
	opts    Options
	w       *world
	mod     *modulation
	items   []*item
	horizon time.Duration
}

// Plan draws a scenario's population, parameters and times from o.Seed.
func Plan(o Options) (*Scenario, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	return planIn(o, newWorld(o.Seed, o.Users))
}

// newWorld draws the API and its users.
func newWorld(seed uint64, users int) *world {
	r := newRand(seed, "world")
	w := &world{cat: newCatalog(r), pop: newPopulation(r, users), typoRate: uniform(r, 0.025, 0.06)}
	w.calibrate(seed)
	return w
}

// planIn plans a scenario of valid options o in world w.
func planIn(o Options, w *world) (*Scenario, error) {
	sc := &Scenario{opts: o, w: w, horizon: o.Duration}
	if o.Duration == 0 {
		sc.horizon = liveHorizon
	}
	sc.mod = newModulation(newRand(o.Seed, "modulation"), sc.horizon)
	p := &planner{sc: sc, o: o, w: w, alloc: newAllocator(newRand(o.Seed, "addresses"))}
	if err := p.planAll(); err != nil {
		return nil, err
	}
	return sc, nil
}

// planner draws every item's parameters and places it in time.
type planner struct {
	sc    *Scenario
	o     Options
	w     *world
	alloc *allocator
	count map[string]int
}

func (p *planner) planAll() error {
	p.count = map[string]int{}
	for _, b := range p.o.Benign {
		p.add(string(b), false, benignSpecs[b])
	}
	for _, a := range p.o.Attacks {
		p.add(string(a), true, attackSpecs[a])
	}
	return p.place()
}

func (p *planner) add(name string, attack bool, spec func(*planner, *rand.Rand, *item)) {
	p.count[name]++
	it := &item{name: name, attack: attack, id: fmt.Sprintf("%s-%d", name, p.count[name]), params: map[string]any{}}
	it.tail = min(3*time.Minute, p.sc.horizon/20)
	spec(p, newRand(p.o.Seed, "plan/"+it.id), it)
	if it.baseline {
		it.earliest = max(it.earliest, p.warmup())
	}
	p.sc.items = append(p.sc.items, it)
}

// warmup is the history baseline-relative items wait for: the configured
// warm-up, or in a scenario shorter than 40 minutes three eighths of it.
func (p *planner) warmup() time.Duration {
	if p.o.Live || p.sc.horizon >= 40*time.Minute {
		return p.o.BaselineWarmup
	}
	return p.sc.horizon * 3 / 8
}

// early is when ordinary attacks may start: after a few minutes of
// background in a scenario, at once in a live demo.
func (p *planner) early() time.Duration {
	if p.o.Live {
		return 0
	}
	return min(3*time.Minute, p.sc.horizon/10)
}

// rate returns drawn, or the configured attack rate when one is set.
func (p *planner) rate(drawn float64) float64 {
	if p.o.AttackRate > 0 {
		return p.o.AttackRate
	}
	return drawn
}

// countDur is the window of an attack of n events at about rate per
// second: long enough that jittered gaps do not push the last ones out.
func countDur(n int, rate float64) time.Duration { return seconds(1.5*float64(n)/rate + 5) }
