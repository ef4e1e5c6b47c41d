package rules

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/backtest"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/simulate"
)

// simLists fill in the default rules' operator lists as the simulator's
// defaults expect them: its honey endpoints and accounts and its listed
// address ranges.
func simLists() map[string]detect.ListSpec {
	var cidrs []string
	for _, p := range simulate.DefaultListedCIDRs {
		cidrs = append(cidrs, p.String())
	}
	return map[string]detect.ListSpec{
		"honey_users":       {Values: simulate.DefaultHoneyAccounts},
		"honey_endpoints":   {Values: simulate.DefaultHoneyEndpoints},
		"honey_paths":       {Values: simulate.DefaultHoneyEndpoints},
		"known_bad_sources": {CIDRs: cidrs, RaiseSeverity: 1},
	}
}

// TestBacktest runs the default rules over simulated hours holding every
// attack and every benign look-alike (vigil simulate --scenario) and scores
// them as vigil backtest does: every attack must be found, with at most
// three alerts in one incident, and no benign pattern may alert.
// VIGIL_BACKTEST_SEEDS=N runs N more seeds (about 5 s each).
func TestBacktest(t *testing.T) {
	if testing.Short() {
		t.Skip("an hour of traffic per scenario")
	}
	runs := backtestHours("VIGIL_BACKTEST_SEEDS")
	rs, err := LoadWith("", simLists())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range runs {
		t.Run(fmt.Sprintf("seed %d rate %g", o.Seed, o.Rate), func(t *testing.T) {
			rep := backtestScenario(t, rs, o)
			for _, r := range rep.Results {
				switch {
				case !r.Detected:
					t.Errorf("%s (%s, key %v): missed", r.ID, r.Attack, r.Key)
				case r.Alerts > 3 || r.Incidents > 1:
					t.Errorf("%s (%s): %d alerts in %d incidents (%v); want at most 3 in one", r.ID, r.Attack, r.Alerts, r.Incidents, r.Rules)
				}
			}
			for _, r := range rep.Results {
				if os.Getenv("VIGIL_BACKTEST_VERBOSE") != "" {
					t.Logf("%s %s delay %s alerts %d rules %v params %v", r.ID, r.Attack, r.Delay.Round(100*time.Millisecond), r.Alerts, r.Rules, r.Params)
				}
			}
			for _, f := range rep.BenignAlerts {
				t.Errorf("benign %s alerted: %s %v at %.0fs", f.Pattern, f.Rule, f.Labels, f.At)
			}
			for _, s := range rep.Summary() {
				t.Logf("%-24s %d/%d found, median first alert %s", s.Attack, s.Detected, s.Incidents, s.MedianDelay.Round(100*time.Millisecond))
			}
		})
	}
}

// backtestHours are the simulated hours the backtest scores: seed 101 at
// the default rate, seed 202 at a low rate with fewer users, and as many
// more default-rate hours (seeds 1000..) as the environment variable
// seedsVar says.
func backtestHours(seedsVar string) []simulate.Options {
	all := func(seed uint64, rate float64, users int) simulate.Options {
		return simulate.Options{Seed: seed, Duration: time.Hour, Rate: rate, Users: users,
			Attacks: simulate.Attacks(), Benign: simulate.Benigns()}
	}
	runs := []simulate.Options{all(101, simulate.DefaultRate, 0), all(202, 80, 10_000)}
	if n, err := strconv.Atoi(os.Getenv(seedsVar)); err == nil {
		for i := range n {
			runs = append(runs, all(uint64(1000+i), simulate.DefaultRate, 0))
		}
	}
	return runs
}

// backtestScenario streams one scenario through the rules and scores it.
func backtestScenario(t *testing.T, rs []*detect.Rule, o simulate.Options) backtest.Report {
	sc, err := simulate.Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []detect.Alert
	e, err := detect.New(rs, detect.Options{Lateness: 5 * time.Second, Emit: func(a detect.Alert) { alerts = append(alerts, a) }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := sc.Stream()
	var ev event.Event
	for {
		if _, ok := s.Next(&ev); !ok {
			break
		}
		e.Process(&ev)
	}
	e.Flush()
	return backtest.Score(scenarioTruth(t, sc), alerts, backtest.Options{})
}

// scenarioTruth is the scenario's truth as vigil backtest reads it from
// the file vigil simulate --truth writes.
func scenarioTruth(t *testing.T, sc *simulate.Scenario) backtest.Truth {
	var buf bytes.Buffer
	if err := simulate.WriteTruth(&buf, sc.Truth()); err != nil {
		t.Fatal(err)
	}
	truth, err := backtest.ReadTruth(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return truth
}
