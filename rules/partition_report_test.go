package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/backtest"
)

// studyRow is one variant's figures on one simulated hour.
type studyRow struct {
	seed    uint64
	variant string
	// alerts counts firing transitions; incidents the distinct incidents
	// among them (a receiver pages once per incident).
	alerts, incidents, maxPerIncident int
	// multiPaged counts attacks whose alerts fall in more than one
	// incident; pages sums the incidents over attacks.
	multiPaged, pages int
	attacks, detected int
	// delays are from each attack found to its first page, in order;
	// medianDelay and p95Delay summarise them.
	delays                []time.Duration
	medianDelay, p95Delay time.Duration
	later                 int // attacks first paged later than by whole
	maxLater              time.Duration
	benign, unattributd   int
	extra, missing        int // firing alerts (fingerprint, start) not in whole / only in whole
}

func (o *studyOutcome) row(v *variant) studyRow {
	r := studyRow{seed: o.seed, variant: v.name, attacks: len(v.report.Results),
		benign: len(v.report.BenignAlerts), unattributd: len(v.report.Unattributed)}
	per := map[string]int{}
	for _, a := range v.alerts {
		if a.Transition == detect.TransitionFiring {
			r.alerts++
			per[a.IncidentID]++
		}
	}
	r.incidents = len(per)
	for _, n := range per {
		r.maxPerIncident = max(r.maxPerIncident, n)
	}
	delays, wholeDelays := firstPages(o.truth, v), firstPages(o.truth, o.whole)
	for i, res := range v.report.Results {
		r.pages += res.Incidents
		if res.Incidents > 1 {
			r.multiPaged++
		}
		if !res.Detected {
			continue
		}
		r.detected++
		d := *delays[i]
		r.delays = append(r.delays, d)
		if w := wholeDelays[i]; w != nil && d > *w {
			r.later++
			r.maxLater = max(r.maxLater, d-*w)
		}
	}
	r.medianDelay, r.p95Delay = delayStats(r.delays)
	for _, d := range diffAlerts(o.whole.alerts, v.alerts) {
		r.extra += d.extra
		r.missing += d.missing
	}
	return r
}

// firstPages is, for each attack of truth, how long after its start the
// first page about it went out (nil if none did): when the stage passed
// the alert on, or when it started where v has no stage. Alerts count for
// an attack as backtest.Score counts them, by key and start.
func firstPages(truth backtest.Truth, v *variant) []*time.Duration {
	out := make([]*time.Duration, len(truth.Incidents))
	for i, inc := range truth.Incidents {
		start := truth.T0.Add(time.Duration(inc.Start * float64(time.Second)))
		end := truth.T0.Add(time.Duration(inc.End * float64(time.Second)))
		for _, a := range v.alerts {
			if a.Transition != detect.TransitionFiring || a.StartsAt.Before(start.Add(-time.Minute)) ||
				a.StartsAt.After(end.Add(5*time.Minute)) || !backtest.Matches(inc.Key, a.Labels) {
				continue
			}
			at := a.StartsAt
			if v.pagedAt != nil {
				at = v.pagedAt[alertKey(a)]
			}
			if d := at.Sub(start); out[i] == nil || d < *out[i] {
				out[i] = &d
			}
		}
	}
	return out
}

// delayStats is the median and the 95th percentile (nearest rank) of ds.
func delayStats(ds []time.Duration) (median, p95 time.Duration) {
	n := len(ds)
	if n == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(ds))
	return (s[(n-1)/2] + s[n/2]) / 2, s[(95*n+99)/100-1]
}

// ruleDiff counts one rule's firing alerts that one variant raised and the
// other did not; moved are extra and missing alerts of the same group that
// only started at another time.
type ruleDiff struct{ extra, missing, moved int }

func (d *ruleDiff) add(o ruleDiff) *ruleDiff {
	if d == nil {
		d = &ruleDiff{}
	}
	d.extra += o.extra
	d.missing += o.missing
	d.moved += o.moved
	return d
}

// alertKey identifies a firing alert across engines: its group and start.
func alertKey(a detect.Alert) string { return a.Fingerprint + "@" + a.StartsAt.String() }

// diffAlerts compares the firing alerts of other with those of base, by
// rule.
func diffAlerts(base, other []detect.Alert) map[string]ruleDiff {
	count := map[string]int{}
	for _, a := range base {
		if a.Transition == detect.TransitionFiring {
			count[alertKey(a)]++
		}
	}
	extra := map[string][]detect.Alert{} // by fingerprint
	for _, a := range other {
		if a.Transition != detect.TransitionFiring {
			continue
		}
		if count[alertKey(a)] > 0 {
			count[alertKey(a)]--
			continue
		}
		extra[a.Fingerprint] = append(extra[a.Fingerprint], a)
	}
	out := map[string]ruleDiff{}
	for _, a := range base {
		if a.Transition != detect.TransitionFiring || count[alertKey(a)] == 0 {
			continue
		}
		count[alertKey(a)]--
		d := out[a.Rule]
		if len(extra[a.Fingerprint]) > 0 {
			extra[a.Fingerprint] = extra[a.Fingerprint][1:]
			d.moved++
		} else {
			d.missing++
		}
		out[a.Rule] = d
	}
	for _, as := range extra {
		for _, a := range as {
			d := out[a.Rule]
			d.extra++
			out[a.Rule] = d
		}
	}
	return out
}

// formatRows is the per-hour table, in Markdown.
func formatRows(rows []studyRow) string {
	var b strings.Builder
	b.WriteString("| seed | variant | alerts | not in whole | only in whole | incidents (pages) | max alerts/incident | attacks paged >1 | pages on attacks | recall | first page median | p95 | attacks paged later (max) | benign | unattributed |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %d | %d | %d | %d | %d | %d/%d | %s | %s | %d (%s) | %d | %d |\n",
			r.seed, r.variant, r.alerts, r.extra, r.missing, r.incidents, r.maxPerIncident, r.multiPaged, r.pages,
			r.detected, r.attacks, r.medianDelay.Round(100*time.Millisecond), r.p95Delay.Round(100*time.Millisecond),
			r.later, r.maxLater.Round(100*time.Millisecond), r.benign, r.unattributd)
	}
	return b.String()
}

// formatTotals sums the rows of each variant over every hour run.
func formatTotals(rows []studyRow) string {
	var b strings.Builder
	b.WriteString("| variant | hours | alerts | not in whole | only in whole | incidents (pages) | attacks paged >1 | pages on attacks | recall | first page median | p95 | attacks paged later | benign | unattributed |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var order []string
	sum := map[string]*studyRow{}
	hours := map[string]int{}
	for _, r := range rows {
		t := sum[r.variant]
		if t == nil {
			t = &studyRow{}
			sum[r.variant] = t
			order = append(order, r.variant)
		}
		hours[r.variant]++
		t.alerts += r.alerts
		t.extra += r.extra
		t.missing += r.missing
		t.incidents += r.incidents
		t.multiPaged += r.multiPaged
		t.pages += r.pages
		t.detected += r.detected
		t.attacks += r.attacks
		t.later += r.later
		t.delays = append(t.delays, r.delays...)
		t.benign += r.benign
		t.unattributd += r.unattributd
	}
	for _, v := range order {
		t := sum[v]
		median, p95 := delayStats(t.delays)
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d/%d | %s | %s | %d | %d | %d |\n", v, hours[v], t.alerts, t.extra, t.missing,
			t.incidents, t.multiPaged, t.pages, t.detected, t.attacks, median.Round(100*time.Millisecond), p95.Round(100*time.Millisecond),
			t.later, t.benign, t.unattributd)
	}
	return b.String()
}

// formatDiffs sums, per variant and rule, the alerts that differ from
// whole over every hour run.
func formatDiffs(diffs map[string]map[string]*ruleDiff) string {
	var b strings.Builder
	b.WriteString("| variant | rule | not in whole | only in whole | same group, other start |\n|---|---|---|---|---|\n")
	for _, v := range slices.Sorted(maps.Keys(diffs)) {
		for _, r := range slices.Sorted(maps.Keys(diffs[v])) {
			if d := diffs[v][r]; *d != (ruleDiff{}) {
				fmt.Fprintf(&b, "| %s | %s | %d | %d | %d |\n", v, r, d.extra, d.missing, d.moved)
			}
		}
	}
	return b.String()
}

// logDifferences logs v's alerts that whole did not raise and the reverse,
// and the attacks v pages for more often than whole.
func logDifferences(t *testing.T, o *studyOutcome, v *variant) {
	in := func(as []detect.Alert) map[string]bool {
		m := map[string]bool{}
		for _, a := range as {
			m[alertKey(a)] = true
		}
		return m
	}
	inWhole, inV := in(o.whole.alerts), in(v.alerts)
	at := func(a detect.Alert) float64 { return a.StartsAt.Sub(o.truth.T0).Seconds() }
	for _, a := range v.alerts {
		if a.Transition == detect.TransitionFiring && !inWhole[alertKey(a)] {
			t.Logf("%s: extra %s %v at %.0fs", v.name, a.Rule, a.Labels, at(a))
		}
	}
	for _, a := range o.whole.alerts {
		if a.Transition == detect.TransitionFiring && !inV[alertKey(a)] {
			t.Logf("%s: missing %s %v at %.0fs", v.name, a.Rule, a.Labels, at(a))
		}
	}
	for i, r := range v.report.Results {
		if w := o.whole.report.Results[i]; r.Incidents > w.Incidents || r.Delay != w.Delay {
			t.Logf("%s: %s (%s) pages %d (whole %d), first alert %s (whole %s), rules %v", v.name, r.ID, r.Attack,
				r.Incidents, w.Incidents, r.Delay.Round(100*time.Millisecond), w.Delay.Round(100*time.Millisecond), r.Rules)
		}
	}
}
