package rules

import (
	"cmp"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// The downstream stage of the partition study. In this design the
// partitions only detect (with unless_firing fed by the lagged view, as in
// the lag L variant) and one stage, a single consumer of every partition's
// alert transitions, does what needs to see every family:
//
//   - it judges inhibited_by entries naming other families' rules: a new
//     alert is dropped, with its later transitions, when an alert it
//     passed on of such a rule fires for the group of the event that fired
//     it (the alert's detect.Entities);
//   - with a hold H, it keeps a new alert of a rule with such inhibitors
//     until H after the alert started (event time), or until it arrives if
//     later, and judges it then, so that an inhibitor arriving meanwhile
//     drops it;
//   - it puts what it passes on in incidents with detect.Correlator, the
//     engine's own correlation.
//
// Lag L: half the partitions of each family (P = 16, by a hash of the
// family and the alert's group) deliver their alerts L after their event
// time, the others at once, so alerts of two partitions may reach the stage
// out of event-time order by up to L. The stage works in arrival order, as
// one consumer would. A firing transition's event time is its start; a
// resolution's its end plus the engines' lateness (the watermark must pass
// it). Repeats page no one and are left out.

const (
	studyPartitions = 16
	studyLateness   = 5 * time.Second
)

// staged is one transition on its way through the stage.
type staged struct {
	a       detect.Alert
	family  int       // for ties
	at      time.Time // event time the partition emitted it
	release time.Time // when the stage judges it
}

// runStage passes the partitions' alerts (by family) through the stage.
func runStage(t *testing.T, parts map[string][]detect.Alert, lag, hold time.Duration) *variant {
	rules := mustLoad(t)
	groupBy := map[string][]string{}
	for _, r := range rules {
		groupBy[r.Name] = r.GroupBy
	}
	inhibitors := map[string][]string{} // by rule: its inhibitors of other families
	for _, r := range rules {
		for _, n := range r.InhibitedBy {
			if familyOf(&detect.Rule{GroupBy: groupBy[n]}) != familyOf(r) {
				inhibitors[r.Name] = append(inhibitors[r.Name], n)
			}
		}
	}
	var items []*staged
	for i, fam := range slices.Sorted(maps.Keys(parts)) {
		fired := map[string]*staged{} // by fingerprint
		for _, a := range parts[fam] {
			it := &staged{a: a, family: i}
			switch a.Transition {
			case detect.TransitionFiring:
				it.at = a.StartsAt
			case detect.TransitionResolved:
				it.at = a.EndsAt.Add(studyLateness)
			default:
				continue
			}
			group, _ := groupOf(groupBy[a.Rule], func(f string) string { return a.Labels[f] })
			it.release = it.at.Add(partitionLag(fam, group, lag))
			if a.Transition == detect.TransitionFiring {
				if len(inhibitors[a.Rule]) > 0 {
					it.release = later(it.release, it.at.Add(hold))
				}
				fired[a.Fingerprint] = it
			} else if f := fired[a.Fingerprint]; f != nil {
				it.release = later(it.release, f.release)
			}
			items = append(items, it)
		}
	}
	// Alerts fired by one event reach the stage in the engine's order:
	// inhibitors first.
	judged := func(x *staged) int { return len(inhibitors[x.a.Rule]) }
	slices.SortStableFunc(items, func(x, y *staged) int {
		return cmp.Or(x.release.Compare(y.release), x.at.Compare(y.at), cmp.Compare(judged(x), judged(y)), cmp.Compare(x.family, y.family))
	})

	v := &variant{name: "stage " + lag.String(), pagedAt: map[string]time.Time{}}
	if hold > 0 {
		v.name += " hold " + hold.String()
	}
	co := detect.NewCorrelator(detect.IncidentOptions{}, rules)
	firing := map[string]bool{}  // rule and group of the alerts passed on and firing
	dropped := map[string]bool{} // by alertKey
	for _, it := range items {
		a := it.a
		group, _ := groupOf(groupBy[a.Rule], func(f string) string { return a.Labels[f] })
		switch {
		case dropped[alertKey(a)]:
			continue
		case a.Transition == detect.TransitionFiring && slices.ContainsFunc(inhibitors[a.Rule], func(n string) bool {
			g, ok := groupOf(groupBy[n], func(f string) string { return entity(a.Entities, f) })
			return ok && firing[n+"\x00"+g]
		}):
			dropped[alertKey(a)] = true
			continue
		case a.Transition == detect.TransitionFiring:
			firing[a.Rule+"\x00"+group] = true
			v.pagedAt[alertKey(a)] = it.release
		default:
			delete(firing, a.Rule+"\x00"+group)
		}
		co.Correlate(&a)
		v.alerts = append(v.alerts, a)
	}
	return v
}

// groupOf joins the values of fields, as value reads them; ok is false
// when one is empty (the engine keeps no group then).
func groupOf(fields []string, value func(string) string) (string, bool) {
	vs := make([]string, len(fields))
	for i, f := range fields {
		if vs[i] = value(f); vs[i] == "" {
			return "", false
		}
	}
	return strings.Join(vs, "\x00"), true
}

// entity is the value of group_by field f in en.
func entity(en detect.Entities, f string) string {
	switch f {
	case "source_ip":
		return en.SourceIP
	case "source_prefix":
		return en.SourcePrefix
	case "user":
		return en.User
	case "client_id":
		return en.ClientID
	case "service":
		return en.Service
	case "endpoint":
		return en.Endpoint
	}
	return ""
}

// partitionLag is how late the partition of family fam holding group
// delivers: lag for half the partitions, nothing for the others.
func partitionLag(fam, group string, lag time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(fam + "\x00" + group))
	if h.Sum32()%studyPartitions >= studyPartitions/2 {
		return lag
	}
	return 0
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// checkCorrelator fails the study if detect.Correlator, given whole's
// transitions in the order the engine emitted them, puts them in other
// incidents than the engine did: the stage's correlation must be the
// engine's.
func checkCorrelator(t *testing.T, alerts []detect.Alert) {
	co := detect.NewCorrelator(detect.IncidentOptions{}, mustLoad(t))
	differ := 0
	for _, a := range alerts {
		c := a
		co.Correlate(&c)
		if c.IncidentID != a.IncidentID || c.IncidentSeverity != a.IncidentSeverity {
			differ++
		}
	}
	if differ > 0 {
		t.Errorf("detect.Correlator puts %d of %d transitions in another incident than the engine", differ, len(alerts))
	}
}
