package rules

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/backtest"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/simulate"
)

// The partition study (issue 17) measures what detecting per key family
// would change. A partitioned deployment routes each event to one partition
// per group_by family (source_ip, user, source_prefix, client_id, service,
// service+endpoint) and runs only that family's rules there, so a rule no
// longer sees the firing alerts of other families' rules: inhibited_by and
// unless_firing entries naming them are dropped, and incident correlation
// only meets alerts of the same family. The study streams the backtest's
// simulated hours through
//
//   - whole: the shipped rules in one engine (today);
//   - part: one engine per family with only its rules, relations to other
//     families removed, each fed every event (window state is per key, so
//     one engine per family equals the union of its partitions, watermark
//     differences aside);
//   - lag L: part, with cross-family inhibited_by and unless_firing
//     restored from a replicated view of the other families' firing alerts
//     that lags by L. The view is whole's firing timeline, shifted by L and
//     replayed into each family engine as "remote" rules of the same names
//     (see shadowRules); correlation stays per family;
//   - stage L, stage L hold H: the partitions only detect, and one stage
//     downstream, reading every partition's alerts, judges cross-family
//     inhibited_by and correlates incidents (partition_stage_test.go);
//     unless_firing stays in the partitions, fed by the view of lag L.
//     The holds tried are 2 s and L.
//
// VIGIL_PARTITION_STUDY=1 runs it on the two hours TestBacktest uses;
// VIGIL_PARTITION_SEEDS=N adds N more (seeds 1000.., as
// VIGIL_BACKTEST_SEEDS does); VIGIL_PARTITION_VERBOSE=1 logs each differing
// alert and attack.
func TestPartitionStudy(t *testing.T) {
	if os.Getenv("VIGIL_PARTITION_STUDY") == "" {
		t.Skip("set VIGIL_PARTITION_STUDY=1 to run the partitioning study (about 30 s per simulated hour)")
	}
	runs := backtestHours("VIGIL_PARTITION_SEEDS")
	lags := []time.Duration{0, time.Second, 5 * time.Second, 30 * time.Second}
	holds := []time.Duration{0, 2 * time.Second}
	crossFamily := map[string]bool{} // rules naming another family's rules
	for _, f := range families(t) {
		for _, r := range familyRules(t, f.name, true, true) {
			crossFamily[r.Name] = slices.ContainsFunc(slices.Concat(r.InhibitedBy, r.UnlessFiring), func(n string) bool { return f.remote[n] != nil })
		}
	}
	var rows []studyRow
	diffs := map[string]map[string]*ruleDiff{} // variant → rule → diff
	for _, o := range runs {
		t.Run(fmt.Sprintf("seed %d rate %g", o.Seed, o.Rate), func(t *testing.T) {
			out := runStudy(t, o, lags, holds)
			for _, v := range out.variants {
				row := out.row(v)
				rows = append(rows, row)
				d := diffs[v.name]
				if d == nil {
					d = map[string]*ruleDiff{}
					diffs[v.name] = d
				}
				for r, rd := range diffAlerts(out.whole.alerts, v.alerts) {
					d[r] = d[r].add(rd)
					// The remote view without lag must be what the single
					// engine sees, or the lagged figures measure the
					// stand-in rather than the lag. (Rules without such
					// relations may still differ by a rare alert, seen once
					// in 48 hours; the cause is not known.)
					if v.name == "lag 0s" && crossFamily[r] {
						t.Errorf("lag 0s differs from whole on %s: %+v; the remote view's stand-in rules are off", r, rd)
					}
				}
				if os.Getenv("VIGIL_PARTITION_VERBOSE") != "" && v.name != "whole" {
					logDifferences(t, out, v)
				}
			}
		})
	}
	t.Log("\n" + formatRows(rows) + "\n" + formatTotals(rows) + "\n" + formatDiffs(diffs))
}

// variant is one way of running the rules and the alerts it raised;
// pagedAt holds when the downstream stage passed each firing alert on (by
// alertKey), for the variants that have one: the others page when an
// alert starts.
type variant struct {
	name    string
	alerts  []detect.Alert
	report  backtest.Report
	pagedAt map[string]time.Time
}

// studyOutcome is one simulated hour under every variant.
type studyOutcome struct {
	seed     uint64
	truth    backtest.Truth
	whole    *variant
	variants []*variant // whole first
}

// runStudy streams one scenario through today's engine and the family
// engines, then again through the family engines with the lagged remote
// view of today's alerts, passes the partitions' alerts through the
// downstream stage at each lag and hold, and scores each.
func runStudy(t *testing.T, o simulate.Options, lags, holds []time.Duration) *studyOutcome {
	sc, err := simulate.Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	truth := scenarioTruth(t, sc)
	whole := newRunner(t, mustLoad(t))
	fams := families(t)
	runners := []*runner{whole}
	for _, f := range fams {
		f.local = newRunner(t, f.local.rules)
		runners = append(runners, f.local)
	}
	end := stream(sc, runners, nil)
	out := &studyOutcome{seed: o.Seed, truth: truth}
	out.whole = &variant{name: "whole", alerts: whole.alerts}
	part := &variant{name: "part"}
	for _, f := range fams {
		part.alerts = append(part.alerts, f.local.alerts...)
	}
	out.variants = []*variant{out.whole, part}
	checkCorrelator(t, whole.alerts)
	var staged []*variant
	for _, lag := range lags {
		v, parts := runLagged(t, sc, fams, whole.alerts, lag, end)
		out.variants = append(out.variants, v)
		// A hold as long as the lag, too: the stage then judges every
		// alert it holds after all alerts fired before it have arrived.
		for _, h := range slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(holds), lag)))) {
			staged = append(staged, runStage(t, parts, lag, h))
		}
	}
	out.variants = append(out.variants, staged...)
	for _, v := range out.variants {
		v.report = backtest.Score(truth, v.alerts, backtest.Options{})
	}
	return out
}

// runLagged runs every family with remote relations again, with the remote
// rules' alerts replayed from timeline delayed by lag; families without
// them raise what they raised in part. It also returns each family's
// partition alerts for the downstream stage: part's, but for the families
// with remote unless_firing, which run again with those relations kept (in
// the same pass) and their remote inhibited_by left to the stage.
func runLagged(t *testing.T, sc *simulate.Scenario, fams []*family, timeline []detect.Alert, lag time.Duration, end time.Time) (*variant, map[string][]detect.Alert) {
	v := &variant{name: "lag " + lag.String()}
	parts := map[string][]detect.Alert{}
	var runners []*runner
	var synth []synthetic
	for _, f := range fams {
		parts[f.name] = f.local.alerts
		if len(f.remote) == 0 {
			v.alerts = append(v.alerts, f.local.alerts...)
			continue
		}
		rs := append(familyRules(t, f.name, true, true), shadowRules(t, f.remote)...)
		r := newRunner(t, rs)
		r.skip = f.remote
		runners = append(runners, r)
		synth = append(synth, remoteEvents(timeline, f.remote, lag, end)...)
		if unless := f.only(f.unless); len(unless) > 0 {
			st := newRunner(t, append(familyRules(t, f.name, false, true), shadowRules(t, unless)...))
			st.skip, st.stage = unless, f.name
			runners = append(runners, st)
		}
	}
	slices.SortStableFunc(synth, func(a, b synthetic) int { return a.ev.Time.Compare(b.ev.Time) })
	stream(sc, runners, synth)
	for _, r := range runners {
		if r.stage == "" {
			v.alerts = append(v.alerts, r.alerts...)
		} else {
			parts[r.stage] = r.alerts
		}
	}
	return v, parts
}

// runner is one engine and the alerts it emitted, less those of the rules
// in skip (the remote view's stand-ins); stage names the family whose
// partition it plays for the downstream stage, if it does.
type runner struct {
	rules  []*detect.Rule
	engine *detect.Engine
	alerts []detect.Alert
	skip   map[string][]string
	stage  string
}

func newRunner(t *testing.T, rs []*detect.Rule) *runner {
	r := &runner{rules: rs}
	e, err := detect.New(rs, detect.Options{Lateness: 5 * time.Second, Emit: func(a detect.Alert) {
		if _, remote := r.skip[a.Rule]; !remote {
			r.alerts = append(r.alerts, a)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.engine = e
	t.Cleanup(e.Close)
	return r
}

// stream feeds the scenario's events, merged in time order with synth
// (sorted), to every runner, flushes them, and returns the last event time.
func stream(sc *simulate.Scenario, runners []*runner, synth []synthetic) time.Time {
	s := sc.Stream()
	var ev event.Event
	var last time.Time
	for {
		if _, ok := s.Next(&ev); !ok {
			break
		}
		for len(synth) > 0 && !synth[0].ev.Time.After(ev.Time) {
			for _, r := range runners {
				if r.skip[synth[0].rule] != nil {
					r.engine.Process(&synth[0].ev)
				}
			}
			synth = synth[1:]
		}
		for _, r := range runners {
			r.engine.Process(&ev)
		}
		last = ev.Time
	}
	for _, r := range runners {
		r.engine.Flush()
	}
	return last
}

func mustLoad(t *testing.T) []*detect.Rule {
	rs, err := LoadWith("", simLists())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// family is the rules sharing one group_by, and the rules of other
// families they name in inhibited_by or unless_firing, with those rules'
// group_by; inhibitors and unless say which relation names each.
type family struct {
	name               string
	local              *runner
	remote             map[string][]string
	inhibitors, unless map[string]bool
}

// only is the part of f.remote named in set.
func (f *family) only(set map[string]bool) map[string][]string {
	out := map[string][]string{}
	for n := range set {
		out[n] = f.remote[n]
	}
	return out
}

// familyOf names a rule's key family: its group_by fields, sorted.
func familyOf(r *detect.Rule) string {
	return strings.Join(slices.Sorted(slices.Values(r.GroupBy)), "+")
}

// families loads the rules once per family, each family's rules with the
// names of other families' rules removed from inhibited_by and
// unless_firing, in the order the loader returns them.
func families(t *testing.T) []*family {
	var out []*family
	groupBy := map[string][]string{}
	for _, r := range mustLoad(t) {
		groupBy[r.Name] = r.GroupBy
		if !slices.ContainsFunc(out, func(f *family) bool { return f.name == familyOf(r) }) {
			out = append(out, &family{name: familyOf(r), remote: map[string][]string{}, inhibitors: map[string]bool{}, unless: map[string]bool{}})
		}
	}
	for _, f := range out {
		for _, r := range familyRules(t, f.name, true, true) {
			for _, n := range slices.Concat(r.InhibitedBy, r.UnlessFiring) {
				if familyOf(&detect.Rule{GroupBy: groupBy[n]}) == f.name {
					continue
				}
				if slices.ContainsFunc(groupBy[n], func(g string) bool { return !slices.Contains(remoteFields, g) }) {
					t.Fatalf("the remote view cannot stand in for rule %q grouped by %v: remoteEvent carries only %v", n, groupBy[n], remoteFields)
				}
				f.remote[n] = groupBy[n]
				f.inhibitors[n] = f.inhibitors[n] || slices.Contains(r.InhibitedBy, n)
				f.unless[n] = f.unless[n] || slices.Contains(r.UnlessFiring, n)
			}
		}
		maps.DeleteFunc(f.inhibitors, func(_ string, v bool) bool { return !v })
		maps.DeleteFunc(f.unless, func(_ string, v bool) bool { return !v })
		f.local = &runner{rules: familyRules(t, f.name, false, false)}
	}
	return out
}

// familyRules loads the rules of family fam, freshly compiled, keeping
// their inhibited_by and unless_firing entries naming rules outside it only
// as inhibit and unless say.
func familyRules(t *testing.T, fam string, inhibit, unless bool) []*detect.Rule {
	all := mustLoad(t)
	in := map[string]bool{}
	var rs []*detect.Rule
	for _, r := range all {
		if familyOf(r) == fam {
			in[r.Name] = true
			rs = append(rs, r)
		}
	}
	remote := func(n string) bool { return !in[n] }
	for _, r := range rs {
		if !inhibit {
			r.InhibitedBy = slices.DeleteFunc(r.InhibitedBy, remote)
		}
		if !unless {
			r.UnlessFiring = slices.DeleteFunc(r.UnlessFiring, remote)
		}
	}
	return rs
}

// remoteService and remoteEndpoint mark the events that replay the remote
// view. No shipped rule counts them: they are 200s on an endpoint no rule
// or list names, carrying only the remote rule's group_by fields.
const (
	remoteService  = "vigil-remote-view"
	remoteEndpoint = "/__remote/"
)

// shadowRules stand in for remote rules: each has a remote rule's name and
// group_by, and fires for a group while remote events for it keep coming,
// so the family's inhibited_by and unless_firing see it as they would see
// the real rule's alert.
func shadowRules(t *testing.T, remote map[string][]string) []*detect.Rule {
	var b strings.Builder
	b.WriteString("rules:\n")
	for _, name := range slices.Sorted(maps.Keys(remote)) {
		fmt.Fprintf(&b, "  - name: %s\n    severity: info\n    category: remote_view\n    match: service == %q && endpoint == %q\n    group_by: [%s]\n    when: {window: 1s, count: 1}\n    resolve_after: 1s\n",
			name, remoteService, remoteEndpoint+name, strings.Join(remote[name], ", "))
	}
	rs, err := detect.ParseRules("remote view", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// synthetic is one event of the remote view, for the families that name
// rule.
type synthetic struct {
	rule string
	ev   event.Event
}

// remoteEvents replays the firing alerts of timeline's remote rules, lag
// later: one event a second for each alert's group from its start until it
// resolved (or the scenario's end).
func remoteEvents(timeline []detect.Alert, remote map[string][]string, lag time.Duration, end time.Time) []synthetic {
	ends := map[string]time.Time{}
	for _, a := range timeline {
		if a.Transition == detect.TransitionResolved {
			ends[a.Fingerprint+a.StartsAt.String()] = a.EndsAt
		}
	}
	var out []synthetic
	for _, a := range timeline {
		if _, ok := remote[a.Rule]; !ok || a.Transition != detect.TransitionFiring {
			continue
		}
		until, ok := ends[a.Fingerprint+a.StartsAt.String()]
		if !ok || until.After(end) {
			until = end
		}
		ev := remoteEvent(a, remote[a.Rule])
		for at := a.StartsAt.Add(lag); !at.After(until.Add(lag)); at = at.Add(time.Second) {
			ev.Time = at
			ev.RequestID = fmt.Sprintf("remote-%s-%d", a.Fingerprint[:8], at.UnixMilli())
			out = append(out, synthetic{rule: a.Rule, ev: ev})
		}
	}
	return out
}

// remoteFields are the group_by fields remoteEvent fills in.
var remoteFields = []string{"user", "client_id", "source_ip", "source_prefix"}

// remoteEvent is an event of the remote view for alert a: only the fields
// of the remote rule's group_by, so that no shipped rule counts it.
func remoteEvent(a detect.Alert, groupBy []string) event.Event {
	ev := event.Event{Service: remoteService, Method: "GET", Endpoint: remoteEndpoint + a.Rule, Status: 200}
	for _, f := range groupBy {
		v := a.Labels[f]
		switch f {
		case "user":
			ev.User = v
		case "client_id":
			ev.ClientID = v
		case "source_ip":
			ev.SourceIP, _ = netip.ParseAddr(v)
		case "source_prefix":
			if p, err := netip.ParsePrefix(v); err == nil {
				ev.SourceIP = p.Addr()
			}
		}
	}
	return ev
}
