package detect

import (
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
	dropped                                  *prometheus.Desc
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
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.alerts, c.firing, c.evals, c.matches, c.stateBytes, c.stateCap, c.stateEntries, c.late, c.dropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	var s fastcache.Stats
	c.e.cache.UpdateStats(&s)
	c.e.mu.Lock()
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
	}
	ch <- prometheus.MustNewConstMetric(c.stateBytes, prometheus.GaugeValue, float64(s.BytesSize)+float64(hotBytes))
	ch <- prometheus.MustNewConstMetric(c.stateCap, prometheus.GaugeValue, float64(c.e.stateCapacityMax))
	ch <- prometheus.MustNewConstMetric(c.stateEntries, prometheus.GaugeValue, float64(s.EntriesCount)+float64(hotGroups))
	ch <- prometheus.MustNewConstMetric(c.late, prometheus.CounterValue, float64(counts.late))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(counts.dropped))
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
	e.cache.UpdateStats(&s)
	e.mu.Lock()
	defer e.mu.Unlock()
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
