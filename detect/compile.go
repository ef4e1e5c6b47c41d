package detect

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"
)

// compiled is a rule ready to run: predicates compiled once, its conditions
// compiled to tracks with fixed bucket geometry, templates parsed. Every
// kind compiles to the same form: threshold, distinct, ratio and spike are
// a `when` with one condition, and a sequence's trigger is a `when` over its
// first events.
type compiled struct {
	kind  Kind
	match *predicate
	// of selects the events the rule counts when it has share or events
	// checks (nil: every event matching match); hasOf says it has them.
	of    *predicate
	hasOf bool
	// lazyStart: a denominator event does not create a group's state (see
	// applyRule). The older ratio and spike kinds count every denominator.
	lazyStart bool

	// Sequences: the trigger tracks count first; then completes the
	// sequence; known events teach the group's usual then_new values.
	first, then, known *predicate
	thenNew            field
	hasThenNew         bool
	knownFor           time.Duration

	groupBy     []field
	eventLabels []field
	inhibitors  []int // rule indexes, set by New
	excluders   []int // unless_firing rule indexes, set by New
	alwaysHot   bool  // grouped only by fields services set: see hot.go
	tracks      []*track
	window      time.Duration // the longest condition window

	resolveAfter, repeat time.Duration
	summary, description *template.Template
	unit                 string
	lists                *listSet
}

// Sequence set bounds: the trigger's then_new values kept per group (more
// than a distributed attack's addresses in a window), and known values.
const (
	freshCap = 256
	knownCap = 16
)

// Compile validates r and compiles its expressions and templates, with no
// operator lists. It is idempotent; New compiles rules that have not been
// compiled yet.
func (r *Rule) Compile() error { return r.CompileWith(nil) }

// CompileWith is Compile with the operator lists the rule's expressions and
// the derived field source_list may use (see lists.go).
func (r *Rule) CompileWith(ls *Lists) error {
	if r.c != nil {
		return nil
	}
	if err := r.validate(); err != nil {
		return err
	}
	cp := compiler{lists: ls.compiled()}
	c := &compiled{kind: r.Kind(), lists: cp.lists}
	c.match = cp.pred("match", r.Match, true)
	conds, of := r.conditions()
	c.hasOf = of != ""
	c.lazyStart = r.Ratio == nil && r.Spike == nil
	c.of = cp.pred(ofKey(r), of, true)
	if s := r.Sequence; s != nil {
		c.first = cp.pred("sequence.first", s.First, false)
		c.then = cp.pred("sequence.then", s.Then, false)
		if s.ThenNew != "" {
			c.thenNew, c.hasThenNew = newField(s.ThenNew), true
		}
		if s.Known != nil {
			c.known = cp.pred("sequence.known.match", s.Known.Match, false)
			c.knownFor = s.Known.For.D()
		}
	}
	c.alwaysHot = true
	for _, f := range r.GroupBy {
		c.groupBy = append(c.groupBy, newField(f))
		c.alwaysHot = c.alwaysHot && isServiceField(f)
	}
	for _, f := range r.EventLabels {
		c.eventLabels = append(c.eventLabels, newField(f))
	}
	for i := range conds {
		tr := cp.track(&conds[i], fmt.Sprintf("%s[%d]", condKey(r), i))
		c.tracks = append(c.tracks, tr)
		c.window = max(c.window, tr.window)
	}
	c.timing(r)
	if len(c.tracks) > 0 && len(c.tracks[0].checks) > 0 {
		c.unit = unitOf(c.tracks[0].checks[0].agg)
	}
	var err error
	if c.summary, err = r.template("summary", r.Summary, defaultSummary); err != nil {
		cp.errs = append(cp.errs, err)
	}
	if c.description, err = r.template("description", r.Description, ""); err != nil {
		cp.errs = append(cp.errs, err)
	}
	if len(cp.errs) > 0 {
		return errors.Join(cp.errs...)
	}
	r.c = c
	return nil
}

// compiler collects the errors of one rule's compilation.
type compiler struct {
	lists *listSet
	errs  []error
}

func (cp *compiler) pred(key, src string, dflt bool) *predicate {
	if src == "" && dflt {
		return nil
	}
	p, err := compilePredicate(src, cp.lists)
	if err != nil {
		cp.errs = append(cp.errs, fmt.Errorf("%s: %w", key, err))
	}
	return p
}

// track compiles one condition.
func (cp *compiler) track(cs *ConditionSpec, key string) *track {
	tr := &track{name: cs.Name, window: cs.Window.D(), slices: int64(cs.Slices.Count), sliceHold: int64(cs.Slices.Hold)}
	tr.match = cp.pred(key+".match", cs.Match, true)
	if d := cs.Distinct; d != nil {
		tr.distinct, tr.hasDistinct = newField(d.Field), true
		tr.setCap = distinctCap(d)
	}
	if d := cs.DistinctShare; d != nil {
		// Both sets are populations' sets: keep many values.
		tr.distinct, tr.hasDistinct = newField(d.Field), true
		tr.setCap = max(tr.setCap, maxDistinct*2)
		tr.ofCap = maxDistinct * 8
	}
	if p := cs.Percentile; p != nil {
		tr.pctField, tr.quantile, tr.hasPct = p.Field, p.P/100, true
	}
	tr.geometry()
	if t := int64(cs.Trim); t > 0 {
		tr.trim = min(max(t/tr.g, 1), maxTrim)
	}
	tr.denomFast = !tr.hasPct
	for _, spec := range cs.checks() {
		ch := check{name: spec.name, agg: spec.agg}
		ch.min, ch.hasMin = bound(spec.min)
		ch.max, ch.hasMax = bound(spec.max)
		if spec.base != nil {
			ch.base = tr.baseline(spec.base, tr.nSeries)
			tr.nSeries++
		}
		switch spec.agg {
		case aggShare:
			tr.needA, tr.needB = true, true
		case aggEvents:
			tr.needB = true
		case aggCount, aggRate:
			tr.needA = true
		case aggDistinctShare:
			tr.needB, tr.denomFast = true, false
		}
		if spec.agg == aggEvents {
			if ch.hasMin && ch.base == nil {
				tr.minB = uint64(ch.min)
			}
			// A denominator event moves an events check's value up: only
			// a plain minimum is safe on the in-place path.
			tr.denomFast = tr.denomFast && !ch.hasMax && ch.base == nil
		}
		if spec.agg == aggShare && ch.hasMax {
			tr.denomFast = false // a share falls with every denominator event
		}
		tr.checks = append(tr.checks, ch)
	}
	if tr.slices > 1 {
		tr.sliceMinB = max(1, (tr.minB+uint64(tr.slices)-1)/uint64(tr.slices))
	}
	return tr
}

// distinctCap is how many distinct values a group keeps: enough above the
// largest bound for the decision to be exact.
func distinctCap(d *DistinctCheck) int {
	n := 0.0
	for _, p := range []*float64{d.Min, d.Max} {
		if p != nil {
			n = max(n, *p)
		}
	}
	if d.Base != nil {
		return maxDistinct * 2
	}
	return min(max(int(n)+int(n)/2+1, 8), maxDistinct*2)
}

// conditions returns the rule's conditions, the older kinds written as a
// `when`, and the expression of its denominator.
func (r *Rule) conditions() (Conditions, string) {
	f := func(v float64) *float64 { return &v }
	switch {
	case len(r.When) > 0:
		return r.When, r.Of
	case r.Threshold != nil:
		return Conditions{{Window: r.Threshold.Window, Count: &Check{Min: f(float64(r.Threshold.Count))}}}, ""
	case r.Distinct != nil:
		d := r.Distinct
		return Conditions{{Window: d.Window, Distinct: &DistinctCheck{Field: d.Field, Min: f(float64(d.Count))}}}, ""
	case r.Ratio != nil:
		of := r.Ratio.Of
		if of == "" {
			of = "true"
		}
		return Conditions{{Window: r.Ratio.Window, Share: &Check{Min: f(r.Ratio.Ratio)},
			Events: &Check{Min: f(float64(r.Ratio.MinEvents))}}}, of
	case r.Spike != nil:
		return r.Spike.conditions()
	case r.Sequence != nil:
		s := r.Sequence
		if len(s.When) > 0 {
			return s.When, s.Of
		}
		return Conditions{{Window: s.Window, Count: &Check{Min: f(float64(s.Count))}}}, ""
	}
	return nil, ""
}

// conditions writes a spike as a baseline check that needs a full period of
// history, as spike rules always have.
func (s *SpikeSpec) conditions() (Conditions, string) {
	full := s.Baseline
	base := &BaselineSpec{Factor: s.Factor, Period: s.Baseline, MinHistory: &full}
	if s.Of == "" {
		m := max(float64(s.MinEvents), s.MinValue)
		return Conditions{{Window: s.Window, Count: &Check{Min: &m, Baseline: base}}}, ""
	}
	minEv, minV := float64(s.MinEvents), s.MinValue
	return Conditions{{Window: s.Window, Share: &Check{Min: &minV, Baseline: base},
		Events: &Check{Min: &minEv}}}, s.Of
}

func ofKey(r *Rule) string {
	switch {
	case r.Ratio != nil:
		return "ratio.of"
	case r.Spike != nil:
		return "spike.of"
	case r.Sequence != nil:
		return "sequence.of"
	}
	return "of"
}

func condKey(r *Rule) string {
	if r.Sequence != nil {
		return "sequence.when"
	}
	return "when"
}

func unitOf(agg aggKind) string {
	switch agg {
	case aggShare:
		return UnitShare
	case aggPercentile:
		return UnitMS
	}
	return ""
}

// timing sets resolve_after (default: the longest window) and the repeat
// interval.
func (c *compiled) timing(r *Rule) {
	c.resolveAfter = r.ResolveAfter.D()
	if c.resolveAfter == 0 {
		c.resolveAfter = c.window
	}
	c.repeat = r.RepeatInterval.D()
	if c.repeat == 0 {
		c.repeat = defaultRepeat
	}
}

// horizon is how long after a group's last event its state can still matter.
func (c *compiled) horizon() time.Duration {
	h := time.Duration(0)
	for _, tr := range c.tracks {
		h = max(h, tr.horizon())
	}
	return max(h, c.knownFor)
}

const defaultSummary = `{{ .Rule }}{{ range $k, $v := .Labels }} {{ $k }}={{ $v }}{{ end }}: {{ .Value }} (threshold {{ .Threshold }}) in {{ .Window }}`

func (r *Rule) template(key, text, dflt string) (*template.Template, error) {
	if text == "" {
		text = dflt
	}
	t, err := parseTemplate(key, text)
	if err != nil {
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	labels := map[string]string{}
	for _, f := range append(slices.Clone(r.GroupBy), r.EventLabels...) {
		labels[f] = "x"
		if f == "source_ip" || f == "source_prefix" {
			labels["source_list"] = "x" // see Engine.enrich
		}
	}
	// The check run refuses a label the rule never has: at run time a
	// missing label would render empty, and {{ .Labels.usr }} would quietly
	// drop the user name from every alert.
	check, err := t.Clone()
	if err != nil {
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	values := map[string]float64{}
	conds, _ := r.conditions()
	for _, c := range conds {
		for _, ch := range c.checks() {
			values[ch.name] = 1
		}
	}
	var buf bytes.Buffer
	data := TemplateData{Rule: r.Name, Labels: labels, Window: "1m0s", Values: values}
	if err := check.Option("missingkey=error").Execute(&buf, data); err != nil {
		if strings.Contains(err.Error(), "map has no entry for key") {
			return nil, fmt.Errorf("%s template names a key this rule does not have: %w; its .Labels are its group_by and event_labels fields (%s) and its .Values its checks (%s)",
				key, err, strings.Join(append(slices.Clone(r.GroupBy), r.EventLabels...), ", "), strings.Join(slices.Sorted(maps.Keys(values)), ", "))
		}
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	return t, nil
}

// TemplateData is what summary and description templates see. Values holds
// every check of the condition that fired, by name (count, distinct, share,
// events, rate, percentile); Condition is its name, if it has one.
type TemplateData struct {
	Rule, Category, Severity string
	Labels                   map[string]string
	Value, Threshold         float64
	Window                   string
	Condition                string
	Values                   map[string]float64
}
