package detect

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the engine's counters. The hot path only increments
// plain integers under the engine's lock; the collector reads them at scrape
// time, so every rule's series exists from the start.
type collector struct {
	e                                        *Engine
	alerts, firing, evals, matches           *prometheus.Desc
	stateBytes, stateCap, stateEntries, late *prometheus.Desc
	dropped, baselines, inhibited            *prometheus.Desc
}

func newCollector(e *Engine) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		e:            e,
		alerts:       d("vigil_alerts_total", "Alert transitions emitted, by rule, severity and transition (firing, repeat, resolved).", "rule", "severity", "state"),
		firing:       d("vigil_alerts_firing", "Alerts currently firing, by rule.", "rule"),
		evals:        d("vigil_rule_evaluations_total", "Events a rule was evaluated on.", "rule"),
		matches:      d("vigil_rule_matches_total", "Events that matched a rule's match expression.", "rule"),
		stateBytes:   d("vigil_detect_state_bytes", "Bytes of window state held in the state cache."),
		stateCap:     d("vigil_detect_state_capacity_bytes", "Capacity of the window state cache in bytes (detect.state_memory); state_bytes/capacity is how full it is."),
		stateEntries: d("vigil_detect_state_groups", "Groups (rule and label values) with window state in the cache."),
		late:         d("vigil_events_late_total", "Events older than the watermark, left out of windows."),
		dropped:      d("vigil_detect_alerts_dropped_total", "New alerts dropped because too many alerts were firing."),
		inhibited:    d("vigil_detect_alerts_inhibited_total", "New alerts not raised because a rule in the rule's inhibited_by was firing for the event's group.", "rule"),
		baselines:    d("vigil_detect_baseline_groups", "Groups with a baseline check, by rule and whether they have min_history of history yet (ready) or not (learning).", "rule", "state"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.alerts, c.firing, c.evals, c.matches, c.stateBytes, c.stateCap, c.stateEntries, c.late, c.dropped, c.baselines, c.inhibited} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	var s fastcache.Stats
	c.e.mu.Lock()
	c.e.cache.UpdateStats(&s) // under the lock: Restore replaces the cache
	type state struct{ ready, learning int }
	base := make(map[string]*state)
	for _, r := range c.e.rules {
		if r.hasBaseline() {
			base[r.Name] = &state{}
		}
	}
	for key, h := range c.e.hot.m {
		for _, b := range c.e.baselinesOf([]byte(key), &h.rs) {
			if b.Ready {
				base[b.Rule].ready++
			} else {
				base[b.Rule].learning++
			}
		}
	}
	hotBytes, hotGroups := c.e.hot.bytes, len(c.e.hot.m)
	counts := c.e.counts
	counts.rules = append([]ruleCounters(nil), counts.rules...)
	c.e.mu.Unlock()
	for i, r := range c.e.rules {
		rc := counts.rules[i]
		for tr, ti := range transitionIndex {
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(rc.alerts[ti]), r.Name, r.Severity, string(tr))
		}
		ch <- prometheus.MustNewConstMetric(c.firing, prometheus.GaugeValue, float64(rc.firing), r.Name)
		ch <- prometheus.MustNewConstMetric(c.evals, prometheus.CounterValue, float64(rc.evaluations), r.Name)
		ch <- prometheus.MustNewConstMetric(c.matches, prometheus.CounterValue, float64(rc.matches), r.Name)
		ch <- prometheus.MustNewConstMetric(c.inhibited, prometheus.CounterValue, float64(rc.inhibited), r.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.stateBytes, prometheus.GaugeValue, float64(s.BytesSize)+float64(hotBytes))
	ch <- prometheus.MustNewConstMetric(c.stateCap, prometheus.GaugeValue, float64(c.e.stateCapacityMax))
	ch <- prometheus.MustNewConstMetric(c.stateEntries, prometheus.GaugeValue, float64(s.EntriesCount)+float64(hotGroups))
	ch <- prometheus.MustNewConstMetric(c.late, prometheus.CounterValue, float64(counts.late))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(counts.dropped))
	for rule, st := range base {
		ch <- prometheus.MustNewConstMetric(c.baselines, prometheus.GaugeValue, float64(st.ready), rule, "ready")
		ch <- prometheus.MustNewConstMetric(c.baselines, prometheus.GaugeValue, float64(st.learning), rule, "learning")
	}
}

// hasBaseline reports whether any check of the rule compares with a baseline.
func (r *Rule) hasBaseline() bool {
	for _, tr := range r.c.tracks {
		for _, ch := range tr.checks {
			if ch.base != nil {
				return true
			}
		}
	}
	return false
}

// RuleStat describes one rule and its counters, for the admin API.
type RuleStat struct {
	Name        string   `json:"name"`
	Kind        Kind     `json:"kind"`
	Severity    string   `json:"severity"`
	Category    string   `json:"category"`
	Description string   `json:"description"`
	Window      Duration `json:"window"`
	File        string   `json:"file,omitempty"`
	Line        int      `json:"line,omitempty"`
	Evaluations uint64   `json:"evaluations"`
	Matches     uint64   `json:"matches"`
	Firing      int      `json:"firing"`
}

// RuleStats returns each rule with its counters, in rule order.
func (e *Engine) RuleStats() []RuleStat {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]RuleStat, len(e.rules))
	for i, r := range e.rules {
		rc := e.counts.rules[i]
		out[i] = RuleStat{
			Name: r.Name, Kind: r.Kind(), Severity: r.Severity, Category: r.Category,
			Description: r.Description, Window: Duration(r.c.window), File: r.File, Line: r.Line,
			Evaluations: rc.evaluations, Matches: rc.matches, Firing: rc.firing,
		}
	}
	return out
}

// Stats are engine-wide counters, for replay's summary.
type Stats struct {
	Late, Dropped uint64
	StateBytes    uint64
	StateCapacity uint64
	StateGroups   uint64
	AlertsByRule  map[string]uint64 // firing transitions
}

// Stats returns engine-wide counters.
func (e *Engine) Stats() Stats {
	var s fastcache.Stats
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cache.UpdateStats(&s)
	out := Stats{
		Late: e.counts.late, Dropped: e.counts.dropped, StateBytes: s.BytesSize + uint64(e.hot.bytes),
		StateCapacity: e.stateCapacityMax, StateGroups: s.EntriesCount + uint64(len(e.hot.m)),
		AlertsByRule: make(map[string]uint64, len(e.rules)),
	}
	for i, r := range e.rules {
		out.AlertsByRule[r.Name] = e.counts.rules[i].alerts[0]
	}
	return out
}

// BaselineStat describes one group's baseline for one check, for the admin
// API: how much history it has and what it currently takes to fire.
type BaselineStat struct {
	Rule      string            `json:"rule"`
	Labels    map[string]string `json:"labels"`
	Condition int               `json:"condition"`
	Check     string            `json:"check"`
	// HistorySeconds is how much history the baseline rests on; Ready says
	// whether it is at least min_history.
	HistorySeconds float64 `json:"history_seconds"`
	Ready          bool    `json:"ready"`
	Median         float64 `json:"median"`
	Spread         float64 `json:"spread"`
	// Threshold is what the check's value must reach now (0 while not ready).
	Threshold float64 `json:"threshold"`
}

// Baselines returns the baselines of the groups in the hot set (the groups
// of rules grouped by service, endpoint or status, which is where baselines
// belong), ordered by rule, labels and condition.
func (e *Engine) Baselines() []BaselineStat {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []BaselineStat
	for key, h := range e.hot.m {
		out = append(out, e.baselinesOf([]byte(key), &h.rs)...)
	}
	slices.SortFunc(out, func(a, b BaselineStat) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(fmt.Sprint(a.Labels), fmt.Sprint(b.Labels)),
			cmp.Compare(a.Condition, b.Condition), cmp.Compare(a.Check, b.Check))
	})
	return out
}

func (e *Engine) baselinesOf(key []byte, rs *ruleState) []BaselineStat {
	if len(key) < 3 || key[2] != stateSlot {
		return nil
	}
	i := int(binary.BigEndian.Uint16(key))
	if i >= len(e.rules) {
		return nil
	}
	r := e.rules[i]
	labels := decodeGroupKey(r.c.groupBy, key[3:])
	var out []BaselineStat
	for j, tr := range r.c.tracks {
		if j < len(rs.tracks) {
			out = append(out, e.trackBaselines(r, j, tr, labels, &rs.tracks[j])...)
		}
	}
	return out
}

func (e *Engine) trackBaselines(r *Rule, j int, tr *track, labels map[string]string, st *groupState) []BaselineStat {
	kh, ok := st.newestIdx()
	if !ok || len(st.series) < tr.nSeries {
		return nil
	}
	var out []BaselineStat
	for ci := range tr.checks {
		ch := &tr.checks[ci]
		if ch.base == nil {
			continue
		}
		bc := tr.baselineAt(ch.base, &st.series[ch.base.series], kh, &e.scratch)
		s := BaselineStat{
			Rule: r.Name, Labels: labels, Condition: j, Check: ch.name,
			HistorySeconds: time.Duration(int64(bc.n) * ch.base.cb).Seconds(),
			Ready:          int64(bc.n) >= ch.base.minSamples && bc.n > 0,
			Median:         bc.median, Spread: bc.spread,
		}
		if s.Ready {
			s.Threshold = max(ch.min, bc.threshold(ch.base.factor, ch.base.n, 0))
		}
		out = append(out, s)
	}
	return out
}

// decodeGroupKey reads the label values back from a group key.
func decodeGroupKey(fields []field, b []byte) map[string]string {
	labels := make(map[string]string, len(fields))
	for _, f := range fields {
		switch f.name {
		case "source_ip", "source_prefix":
			n := 16
			if f.name == "source_prefix" {
				n = 17
			}
			if len(b) < n {
				return labels
			}
			a := netip.AddrFrom16([16]byte(b[:16])).Unmap()
			labels[f.name] = a.String()
			if n == 17 {
				labels[f.name] = netip.PrefixFrom(a, int(b[16])).String()
			}
			b = b[n:]
		default:
			l, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < l {
				return labels
			}
			labels[f.name] = string(b[k : k+int(l)])
			b = b[k+int(l):]
		}
	}
	return labels
}
