package detect

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Conditions is the `when:` list of a rule (or of a sequence's trigger): the
// rule holds for a group while any condition holds, and one alert stands
// for all of them. A single mapping reads as a list of one.
type Conditions []ConditionSpec

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Conditions) UnmarshalYAML(n *yaml.Node) error {
	// Node.Decode does not reject unknown keys as the rule file's decoder
	// does, so they are checked here for everything under when.
	if err := knownKeys(n, reflect.TypeFor[Conditions]()); err != nil {
		return err
	}
	if n.Kind == yaml.MappingNode {
		var one ConditionSpec
		if err := n.Decode(&one); err != nil {
			return err
		}
		*c = Conditions{one}
		return nil
	}
	var list []ConditionSpec
	if err := n.Decode(&list); err != nil {
		return err
	}
	*c = list
	return nil
}

// knownKeys reports the first mapping key under n that no field of typ (as
// YAML would decode n into it) takes, with its line and the keys there are.
func knownKeys(n *yaml.Node, typ reflect.Type) error {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case n.Kind == yaml.SequenceNode && typ.Kind() == reflect.Slice:
		for _, item := range n.Content {
			if err := knownKeys(item, typ.Elem()); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && typ.Kind() == reflect.Slice:
		return knownKeys(n, typ.Elem()) // a single condition for a list of them
	case n.Kind == yaml.MappingNode && typ.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		var names []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = typ.Field(i).Type
				names = append(names, name)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("line %d: unknown key %q; use one of %s", k.Line, k.Value, strings.Join(names, ", "))
			}
			if err := knownKeys(n.Content[i+1], ft); err != nil {
				return err
			}
		}
	}
	return nil
}

// ConditionSpec is one condition: a window and the checks that must all
// hold over it.
type ConditionSpec struct {
	// Name is shown in the alert when this condition made it fire.
	Name string `yaml:"name"`
	// Match narrows the rule's match for this condition only.
	Match  string   `yaml:"match"`
	Window Duration `yaml:"window"`
	// Slices makes share and percentile checks hold only when they hold in
	// enough of equal parts of the window, so that a few seconds of errors
	// (a deploy blip) cannot make a minute look bad.
	Slices Slices `yaml:"slices"`
	// Trim leaves out of shares, up to this much of the window, the buckets
	// where at least half the events match, the busiest first: the seconds
	// of a deploy blip (every request failing) then weigh nothing, while
	// errors spread over the window, as a real rise is, are all kept.
	Trim Duration `yaml:"trim"`

	Count      *Check           `yaml:"count"`
	Rate       *Check           `yaml:"rate"`
	Events     *Check           `yaml:"events"`
	Share      *Check           `yaml:"share"`
	Distinct   *DistinctCheck   `yaml:"distinct"`
	Percentile *PercentileCheck `yaml:"percentile"`
	// DistinctShare is the share of the distinct values of its field among
	// the events matching `of` that also occur among the matching events:
	// the share of a login endpoint's networks that fail. A surge of real
	// users leaves it as it was; a botnet of addresses that all fail lifts
	// it; one attacker failing a thousand times moves it by one value.
	DistinctShare *DistinctCheck `yaml:"distinct_share"`
}

// Slices splits a condition's window in Count equal parts, of which Hold
// must each satisfy the share and percentile checks. A plain number N is
// {count: N, hold: N}: every part.
type Slices struct {
	Count int `yaml:"count"`
	Hold  int `yaml:"hold"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Slices) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := strconv.Atoi(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: slices %q: write a number of parts, e.g. 3, or {count: 8, hold: 5}", n.Line, n.Value)
		}
		*s = Slices{Count: v, Hold: v}
		return nil
	}
	type plain Slices
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Slices(p)
	return nil
}

// Check compares an aggregate with a fixed bound, the group's own baseline,
// or both. A plain number is a minimum: `count: 5` is `count: {min: 5}`.
type Check struct {
	Min      *float64      `yaml:"min"`
	Max      *float64      `yaml:"max"`
	Baseline *BaselineSpec `yaml:"baseline"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *Check) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			return fmt.Errorf("line %d: %q is not a number; write a minimum such as 5, or {min: 5, baseline: {...}}", n.Line, n.Value)
		}
		*c = Check{Min: &v}
		return nil
	}
	type plain Check
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = Check(p)
	return nil
}

// DistinctCheck counts distinct values of Field among matching events.
type DistinctCheck struct {
	Field string        `yaml:"field"`
	Min   *float64      `yaml:"min"`
	Max   *float64      `yaml:"max"`
	Base  *BaselineSpec `yaml:"baseline"`
}

// PercentileCheck is the P-th percentile of Field (latency_ms) over the
// matching events of the window.
type PercentileCheck struct {
	Field string        `yaml:"field"`
	P     float64       `yaml:"p"`
	Min   *float64      `yaml:"min"`
	Max   *float64      `yaml:"max"`
	Base  *BaselineSpec `yaml:"baseline"`
}

// BaselineSpec compares an aggregate with its own typical value for the
// group: the median of the same aggregate sampled over the same window
// once per sample interval during Period before the window. The check holds
// when the value is at least Factor times that median and clearly above its
// spread (see baseline.go); it cannot hold before the group has MinHistory
// of history.
type BaselineSpec struct {
	Factor     float64   `yaml:"factor"`
	Period     Duration  `yaml:"period"`
	MinHistory *Duration `yaml:"min_history"`
}

// period is the baseline period, defaulted.
func (b *BaselineSpec) period() time.Duration {
	if b.Period == 0 {
		return defaultBaselinePeriod
	}
	return b.Period.D()
}

// minHistory is the history a group needs, defaulted: 15 minutes, or the
// whole period when that is shorter.
func (b *BaselineSpec) minHistory() time.Duration {
	if b.MinHistory == nil {
		return min(defaultMinHistory, b.period())
	}
	return b.MinHistory.D()
}

// KnownSpec learns the values of a sequence's then_new field that the group
// normally has (for example the addresses a user works from): values seen
// on events matching Match within For are not new.
type KnownSpec struct {
	Match string   `yaml:"match"`
	For   Duration `yaml:"for"`
}

// Baseline defaults and limits.
const (
	defaultBaselinePeriod = time.Hour
	defaultMinHistory     = 15 * time.Minute
	minSampleInterval     = time.Minute
	samplesPerPeriod      = 60
	maxSlices             = 12
	maxConditions         = 8
	maxKnownFor           = 7 * 24 * time.Hour
)

// percentileFields are the numeric event fields a percentile check can read.
var percentileFields = []string{"latency_ms"}

func bound(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// validate checks one condition; key prefixes its messages (e.g. "when[0]").
func (c *ConditionSpec) validate(key string, hasOf bool) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if w := c.Window.D(); w < minWindow || w > maxWindow {
		add("window is %s; set it between %s and %s", w, minWindow, maxWindow)
	}
	if sl := c.Slices; sl.Count < 0 || sl.Count > maxSlices || sl.Count == 1 {
		add("slices is %d; set 2 to %d parts, or leave it out", sl.Count, maxSlices)
	} else if sl.Count > 0 && (sl.Hold < 1 || sl.Hold > sl.Count) {
		add("slices.hold is %d; set 1 to %d (the parts that must hold)", sl.Hold, sl.Count)
	}
	n := 0
	for _, ch := range c.checks() {
		n++
		if err := ch.validate(); err != nil {
			add("%s: %v", ch.name, err)
		}
	}
	if n == 0 {
		add("set at least one check: count, rate, events, share, distinct, distinct_share or percentile")
	}
	if ds := c.DistinctShare; ds != nil {
		switch {
		case !isGroupField(ds.Field):
			add("distinct_share.field %q is not a field that can be counted; use one of %s", ds.Field, groupFieldList())
		case c.Distinct != nil && c.Distinct.Field != ds.Field:
			add("distinct and distinct_share count the same field; use %q in both", c.Distinct.Field)
		case !hasOf:
			add("distinct_share counts values among events matching `of`; set `of`")
		}
	}
	if t := c.Trim.D(); t < 0 || t >= c.Window.D()/2 {
		add("trim is %s; set it below half the window (%s)", t, c.Window.D()/2)
	} else if t > 0 && c.Share == nil {
		add("trim applies to share checks; add one or remove trim")
	}
	if c.Slices.Count > 1 && c.Share == nil && c.Percentile == nil {
		add("slices applies to share and percentile checks; add one or remove slices")
	}
	if c.Distinct != nil && !isGroupField(c.Distinct.Field) {
		add("distinct.field %q is not a field that can be counted; use one of %s", c.Distinct.Field, groupFieldList())
	}
	if p := c.Percentile; p != nil {
		if !isPercentileField(p.Field) {
			add("percentile.field %q is not numeric; use latency_ms", p.Field)
		}
		if !(p.P > 0 && p.P < 100) {
			add("percentile.p is %g; set a percentile between 0 and 100, e.g. 95", p.P)
		}
	}
	if (c.Share != nil || c.Events != nil) && !hasOf {
		errs = append(errs, fmt.Errorf("%s: share and events count events matching `of`; set `of` (e.g. of: endpoint startsWith \"/v1/auth/\")", key))
	}
	return errors.Join(errs...)
}

func isPercentileField(f string) bool {
	for _, p := range percentileFields {
		if p == f {
			return true
		}
	}
	return false
}

// checkSpec is one check of a condition, by aggregate, in a uniform form.
type checkSpec struct {
	name     string
	agg      aggKind
	min, max *float64
	base     *BaselineSpec
}

// checks returns the condition's checks in reporting order: those compared
// with a baseline first, then those with a minimum, then those with only a
// maximum; within each, distinct, count, rate, percentile, share, events.
// The first is the one an alert reports as its value.
func (c *ConditionSpec) checks() []checkSpec {
	var all []checkSpec
	if d := c.Distinct; d != nil {
		all = append(all, checkSpec{"distinct", aggDistinct, d.Min, d.Max, d.Base})
	}
	for _, x := range []struct {
		name string
		agg  aggKind
		c    *Check
	}{{"count", aggCount, c.Count}, {"rate", aggRate, c.Rate}} {
		if x.c != nil {
			all = append(all, checkSpec{x.name, x.agg, x.c.Min, x.c.Max, x.c.Baseline})
		}
	}
	if p := c.Percentile; p != nil {
		all = append(all, checkSpec{"percentile", aggPercentile, p.Min, p.Max, p.Base})
	}
	if d := c.DistinctShare; d != nil {
		all = append(all, checkSpec{"distinct_share", aggDistinctShare, d.Min, d.Max, d.Base})
	}
	for _, x := range []struct {
		name string
		agg  aggKind
		c    *Check
	}{{"share", aggShare, c.Share}, {"events", aggEvents, c.Events}} {
		if x.c != nil {
			all = append(all, checkSpec{x.name, x.agg, x.c.Min, x.c.Max, x.c.Baseline})
		}
	}
	// Baseline checks first, then those with a minimum, then bounds from
	// above only: an alert reports what made it unusual.
	rank := func(ch checkSpec) int {
		switch {
		case ch.base != nil:
			return 0
		case ch.min != nil:
			return 1
		}
		return 2
	}
	out := make([]checkSpec, 0, len(all))
	for r := range 3 {
		for _, ch := range all {
			if rank(ch) == r {
				out = append(out, ch)
			}
		}
	}
	return out
}

func (ch checkSpec) validate() error {
	lo, hasLo := bound(ch.min)
	hi, hasHi := bound(ch.max)
	var errs []error
	if !hasLo && !hasHi && ch.base == nil {
		errs = append(errs, errors.New("set min, max or baseline"))
	}
	for _, v := range []struct {
		name string
		v    float64
		set  bool
	}{{"min", lo, hasLo}, {"max", hi, hasHi}} {
		if v.set && (v.v < 0 || math.IsNaN(v.v) || math.IsInf(v.v, 0) || ((ch.agg == aggShare || ch.agg == aggDistinctShare) && v.v > 1)) {
			errs = append(errs, fmt.Errorf("%s is %g; set it at least 0%s", v.name, v.v, map[bool]string{true: " and at most 1 (a share)"}[ch.agg == aggShare || ch.agg == aggDistinctShare]))
		}
	}
	if hasLo && hasHi && hi < lo {
		errs = append(errs, fmt.Errorf("max %g is below min %g", hi, lo))
	}
	if b := ch.base; b != nil {
		if !(b.Factor > 1 && b.Factor <= 1e6) {
			errs = append(errs, fmt.Errorf("baseline.factor is %g; set it above 1, e.g. 3", b.Factor))
		}
		if p := b.Period.D(); p != 0 && (p < 10*time.Minute || p > maxBaseline) {
			errs = append(errs, fmt.Errorf("baseline.period is %s; set it between 10m and %s (default 1h)", p, maxBaseline))
		}
		if m := b.minHistory(); m < 0 || m > b.period() {
			errs = append(errs, fmt.Errorf("baseline.min_history is %s; set it between 0s and the period (%s)", m, b.period()))
		}
		if hasHi {
			errs = append(errs, errors.New("max cannot be combined with baseline"))
		}
	}
	return errors.Join(errs...)
}
