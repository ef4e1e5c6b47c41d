// Package backtest scores the alerts rules produced on recorded traffic
// against the truth about that traffic: which attacks it holds (each
// identified by a key of alert labels, such as {"source_ip": "203.0.113.7"},
// and a time range) and which benign look-alikes must stay quiet. `vigil
// backtest` and the default rule pack's test use it; teams use it to tune
// thresholds on their own traffic before deploying.
package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// Truth is what a traffic file holds. Times are seconds from T0.
type Truth struct {
	T0        time.Time  `json:"t0"`
	Incidents []Incident `json:"incidents"`
	Benign    []Benign   `json:"benign"`
}

// Incident is one attack in the traffic.
type Incident struct {
	ID     string            `json:"id"`
	Attack string            `json:"attack,omitempty"`
	Key    map[string]string `json:"key"`
	Start  float64           `json:"start"`
	End    float64           `json:"end"`
	// Params are the attack's parameters, as the generator chose them.
	Params map[string]any `json:"params,omitempty"`
}

// Benign is a pattern that must not alert.
type Benign struct {
	Pattern string            `json:"pattern,omitempty"`
	Key     map[string]string `json:"key"`
	Start   float64           `json:"start,omitempty"`
	End     float64           `json:"end,omitempty"`
	Params  map[string]any    `json:"params,omitempty"`
}

// ReadTruth decodes a truth file.
func ReadTruth(r io.Reader) (Truth, error) {
	var t Truth
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Truth{}, fmt.Errorf("truth file: %w; see docs/rules.md (Backtests) for its format", err)
	}
	for i, inc := range t.Incidents {
		if len(inc.Key) == 0 || inc.Start < 0 || inc.End < inc.Start {
			return Truth{}, fmt.Errorf("truth file: incident %d (%q) needs a key and 0 <= start <= end", i, inc.ID)
		}
	}
	for i, b := range t.Benign {
		if len(b.Key) == 0 || b.Start < 0 || (b.End > 0 && b.End < b.Start) {
			return Truth{}, fmt.Errorf("truth file: benign pattern %d (%q) needs a key, and start <= end when it has an end", i, b.Pattern)
		}
	}
	return t, nil
}

// Options tune matching.
type Options struct {
	// Before and After widen an incident's time range for the alerts that
	// count for it (default 1 minute before, 5 minutes after its end).
	Before, After time.Duration
}

// Result is one incident's outcome.
type Result struct {
	Incident
	Detected bool `json:"detected"`
	// Delay is from the incident's start to its first alert's start.
	Delay time.Duration `json:"delay_ns"`
	// Alerts counts the firing alerts whose labels match the key; Rules
	// names their rules; Incidents counts the distinct engine incidents
	// they belong to (one is the aim: one attack, one page).
	Alerts    int      `json:"alerts"`
	Rules     []string `json:"rules"`
	Incidents int      `json:"incidents"`
}

// Report is the outcome of a backtest.
type Report struct {
	Results []Result `json:"results"`
	// BenignAlerts are firing alerts on a benign pattern's key: false
	// alerts on traffic that must stay quiet.
	BenignAlerts []Flagged `json:"benign_alerts"`
	// Unattributed are firing alerts matching no incident's key and not
	// correlated (by incident id) with an alert that does.
	Unattributed []Flagged `json:"unattributed"`
	Recall       float64   `json:"recall"`
}

// Flagged is an alert with why it was flagged.
type Flagged struct {
	Rule    string            `json:"rule"`
	Labels  map[string]string `json:"labels"`
	At      float64           `json:"at"`
	Pattern string            `json:"pattern,omitempty"`
}

// Score matches the firing transitions among alerts with the truth.
func Score(t Truth, alerts []detect.Alert, o Options) Report {
	if o.Before == 0 {
		o.Before = time.Minute
	}
	if o.After == 0 {
		o.After = 5 * time.Minute
	}
	var firing []detect.Alert
	for _, a := range alerts {
		if a.Transition == detect.TransitionFiring {
			firing = append(firing, a)
		}
	}
	rep := Report{}
	attributed := map[string]bool{} // engine incident ids of matched alerts
	matched := make([]bool, len(firing))
	for _, inc := range t.Incidents {
		r := Result{Incident: inc}
		ids := map[string]bool{}
		from := t.T0.Add(secs(inc.Start) - o.Before)
		to := t.T0.Add(secs(inc.End) + o.After)
		for i, a := range firing {
			if a.StartsAt.Before(from) || a.StartsAt.After(to) || !Matches(inc.Key, a.Labels) {
				continue
			}
			matched[i] = true
			d := a.StartsAt.Sub(t.T0.Add(secs(inc.Start)))
			if !r.Detected || d < r.Delay {
				r.Delay = d
			}
			r.Detected = true
			r.Alerts++
			if !slices.Contains(r.Rules, a.Rule) {
				r.Rules = append(r.Rules, a.Rule)
			}
			if a.IncidentID != "" {
				ids[a.IncidentID] = true
				attributed[a.IncidentID] = true
			}
		}
		r.Incidents = len(ids)
		if r.Detected && r.Incidents == 0 {
			r.Incidents = r.Alerts // no correlation: each alert pages
		}
		slices.Sort(r.Rules)
		rep.Results = append(rep.Results, r)
	}
	for i, a := range firing {
		at := a.StartsAt.Sub(t.T0).Seconds()
		if b, ok := benignMatch(t, a, o); ok {
			rep.BenignAlerts = append(rep.BenignAlerts, Flagged{Rule: a.Rule, Labels: a.Labels, At: at, Pattern: b})
			continue
		}
		if !matched[i] && (a.IncidentID == "" || !attributed[a.IncidentID]) {
			rep.Unattributed = append(rep.Unattributed, Flagged{Rule: a.Rule, Labels: a.Labels, At: at})
		}
	}
	n := 0
	for _, r := range rep.Results {
		if r.Detected {
			n++
		}
	}
	if len(rep.Results) > 0 {
		rep.Recall = float64(n) / float64(len(rep.Results))
	}
	return rep
}

func benignMatch(t Truth, a detect.Alert, o Options) (string, bool) {
	for _, b := range t.Benign {
		if b.End > 0 {
			from, to := t.T0.Add(secs(b.Start)-o.Before), t.T0.Add(secs(b.End)+o.After)
			if a.StartsAt.Before(from) || a.StartsAt.After(to) {
				continue
			}
		}
		if Matches(b.Key, a.Labels) {
			return b.Pattern, true
		}
	}
	return "", false
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Matches reports whether an alert with labels is about key: every key
// label the alert also has agrees, and at least one does. An address and a
// network agree when the network holds the address, so a rule grouped by
// source_prefix is about the attack of an address in it, and the other way
// round.
func Matches(key, labels map[string]string) bool {
	agree := 0
	for k, v := range key {
		got, ok := lookup(labels, k)
		if !ok {
			continue
		}
		if !sameEntity(k, v, got) {
			return false
		}
		agree++
	}
	return agree > 0
}

// lookup finds the label of an alert that speaks of key label k: the label
// itself, or for addresses and networks the other one.
func lookup(labels map[string]string, k string) (string, bool) {
	if v, ok := labels[k]; ok {
		return v, true
	}
	switch k {
	case "source_ip":
		v, ok := labels["source_prefix"]
		return v, ok
	case "source_prefix":
		v, ok := labels["source_ip"]
		return v, ok
	}
	return "", false
}

func sameEntity(k, want, got string) bool {
	if want == got {
		return true
	}
	if k != "source_ip" && k != "source_prefix" {
		return false
	}
	if p, err := netip.ParsePrefix(want); err == nil {
		if a, err := netip.ParseAddr(got); err == nil {
			return p.Contains(a.Unmap())
		}
		if q, err := netip.ParsePrefix(got); err == nil {
			return p.Overlaps(q)
		}
	}
	if a, err := netip.ParseAddr(want); err == nil {
		if p, err := netip.ParsePrefix(got); err == nil {
			return p.Contains(a.Unmap())
		}
		if b, err := netip.ParseAddr(got); err == nil {
			return a.Unmap() == b.Unmap()
		}
	}
	return false
}

// ByAttack summarises results per attack kind: incidents, detected, and the
// median first-alert delay of those detected.
type ByAttack struct {
	Attack      string        `json:"attack"`
	Incidents   int           `json:"incidents"`
	Detected    int           `json:"detected"`
	MedianDelay time.Duration `json:"median_delay_ns"`
	MaxAlerts   int           `json:"max_alerts"`
	MaxPages    int           `json:"max_incidents"`
}

// Summary groups the report's results by attack.
func (r Report) Summary() []ByAttack {
	groups := map[string][]Result{}
	for _, res := range r.Results {
		groups[res.Attack] = append(groups[res.Attack], res)
	}
	var out []ByAttack
	for name, rs := range groups {
		s := ByAttack{Attack: name, Incidents: len(rs)}
		var delays []time.Duration
		for _, res := range rs {
			if res.Detected {
				s.Detected++
				delays = append(delays, res.Delay)
			}
			s.MaxAlerts = max(s.MaxAlerts, res.Alerts)
			s.MaxPages = max(s.MaxPages, res.Incidents)
		}
		if len(delays) > 0 {
			slices.Sort(delays)
			n := len(delays)
			s.MedianDelay = (delays[(n-1)/2] + delays[n/2]) / 2
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attack < out[j].Attack })
	return out
}
