package detect

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Kind names a rule's detection kind.
type Kind string

// Rule kinds; docs/rules.md describes each.
const (
	KindThreshold Kind = "threshold"
	KindDistinct  Kind = "distinct"
	KindRatio     Kind = "ratio"
	KindSpike     Kind = "spike"
	KindSequence  Kind = "sequence"
	// KindWhen is the general form the others are written in: conditions
	// over windows, each a set of checks on aggregates (see spec.go).
	KindWhen Kind = "when"
)

// Severities, lowest first.
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Rule is one detection rule as written in YAML, plus its compiled form once
// Compile has succeeded. Exactly one kind block is set.
type Rule struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	Category    string   `yaml:"category"`
	Match       string   `yaml:"match"`
	GroupBy     []string `yaml:"group_by"`
	// Of selects the events that share and events checks of When count
	// (the denominator); events matching neither are ignored.
	Of string `yaml:"of"`
	// AppSensor and Attack name the OWASP AppSensor detection points and
	// MITRE ATT&CK techniques the rule implements; alerts carry them.
	AppSensor []string `yaml:"appsensor"`
	Attack    []string `yaml:"attack"`
	// EventLabels adds labels taken from the event that made the alert
	// fire (for example the user an attacking address logged in as). They
	// describe the alert but do not identify it: the fingerprint covers
	// group_by's labels only.
	EventLabels []string `yaml:"event_labels"`
	// InhibitedBy names rules whose firing alert, for the group of the
	// event at hand, keeps this rule from raising a new alert: a network
	// already alerting needs no alert per address.
	InhibitedBy []string `yaml:"inhibited_by"`
	// UnlessFiring names rules whose firing alert, for the group of an
	// event, keeps this rule from counting the event at all: the failed
	// logins of an account already alerting as attacked do not also make
	// its login endpoint look attacked by a botnet.
	UnlessFiring []string `yaml:"unless_firing"`

	When      Conditions     `yaml:"when"`
	Threshold *ThresholdSpec `yaml:"threshold"`
	Distinct  *DistinctSpec  `yaml:"distinct"`
	Ratio     *RatioSpec     `yaml:"ratio"`
	Spike     *SpikeSpec     `yaml:"spike"`
	Sequence  *SequenceSpec  `yaml:"sequence"`

	ResolveAfter   Duration `yaml:"resolve_after"`
	RepeatInterval Duration `yaml:"repeat_interval"`
	Summary        string   `yaml:"summary"`

	// File and Line say where the rule was defined; set by the loader.
	File string `yaml:"-"`
	Line int    `yaml:"-"`

	c *compiled
}

// ThresholdSpec fires when at least Count matching events fall in Window.
type ThresholdSpec struct {
	Count  int      `yaml:"count"`
	Window Duration `yaml:"window"`
}

// DistinctSpec fires when matching events carry at least Count distinct
// values of Field in Window.
type DistinctSpec struct {
	Field  string   `yaml:"field"`
	Count  int      `yaml:"count"`
	Window Duration `yaml:"window"`
}

// RatioSpec fires when, among the group's events matching Of (all events when
// empty), the share that also matches the rule's match is at least Ratio,
// with at least MinEvents events matching Of in Window.
type RatioSpec struct {
	Of        string   `yaml:"of"`
	Ratio     float64  `yaml:"ratio"`
	MinEvents int      `yaml:"min_events"`
	Window    Duration `yaml:"window"`
}

// SpikeSpec fires when the value in Window is at least Factor times its
// baseline over the Baseline period before Window, and at least MinValue.
// Without Of the value is the count of matching events (the baseline is
// scaled to Window's length); with Of it is the ratio of matching events to
// events matching Of. MinEvents is the least number of events (matching, or
// matching Of) in Window.
type SpikeSpec struct {
	Of        string   `yaml:"of"`
	Window    Duration `yaml:"window"`
	Baseline  Duration `yaml:"baseline"`
	Factor    float64  `yaml:"factor"`
	MinEvents int      `yaml:"min_events"`
	MinValue  float64  `yaml:"min_value"`
}

// SequenceSpec fires when, per group, an event matching Then comes while
// the trigger holds over the events matching First: at least Count of them
// within Window, or, with When, any of its conditions (Of is then the
// denominator of share and events checks). With ThenNew, the Then event's
// value of that field must not be among the First events' values in the
// trigger's window, nor (with Known) among the values the group had on
// events matching Known.Match within Known.For. The rule's match applies to
// every event.
type SequenceSpec struct {
	First   string     `yaml:"first"`
	Count   int        `yaml:"count"`
	Window  Duration   `yaml:"window"`
	Of      string     `yaml:"of"`
	When    Conditions `yaml:"when"`
	Then    string     `yaml:"then"`
	ThenNew string     `yaml:"then_new"`
	Known   *KnownSpec `yaml:"known"`
}

// Limits on rule parameters.
const (
	maxNameLen        = 64
	maxGroupBy        = 4
	maxCount          = 1_000_000
	maxDistinct       = 2048
	minWindow         = time.Second
	maxWindow         = 24 * time.Hour
	maxBaseline       = 7 * 24 * time.Hour
	minRepeatInterval = time.Minute
	defaultRepeat     = 4 * time.Hour
	maxTemplateLen    = 4096
	maxMetadata       = 8
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Kind returns the rule's kind, or "" when no kind block is set.
func (r *Rule) Kind() Kind {
	k, _ := r.kinds()
	return k
}

func (r *Rule) kinds() (Kind, int) {
	var k Kind
	n := 0
	for _, c := range []struct {
		set  bool
		kind Kind
	}{
		{len(r.When) > 0, KindWhen},
		{r.Threshold != nil, KindThreshold}, {r.Distinct != nil, KindDistinct},
		{r.Ratio != nil, KindRatio}, {r.Spike != nil, KindSpike}, {r.Sequence != nil, KindSequence},
	} {
		if c.set {
			k, n = c.kind, n+1
		}
	}
	return k, n
}

// Window returns the rule's window (the current window for spike rules,
// the longest for a rule with several conditions).
func (r *Rule) Window() time.Duration {
	switch {
	case len(r.When) > 0:
		return longestWindow(r.When)
	case r.Sequence != nil && len(r.Sequence.When) > 0:
		return longestWindow(r.Sequence.When)
	case r.Threshold != nil:
		return r.Threshold.Window.D()
	case r.Distinct != nil:
		return r.Distinct.Window.D()
	case r.Ratio != nil:
		return r.Ratio.Window.D()
	case r.Spike != nil:
		return r.Spike.Window.D()
	case r.Sequence != nil:
		return r.Sequence.Window.D()
	}
	return 0
}

func longestWindow(cs Conditions) time.Duration {
	w := time.Duration(0)
	for _, c := range cs {
		w = max(w, c.Window.D())
	}
	return w
}

// Lookback is how much event time before now the rule's state depends on:
// its longest window, plus a baseline's period or what a sequence learns
// as known. A daemon replays this much of its stream after a restart.
func (r *Rule) Lookback() time.Duration {
	lb := r.Window()
	conds := r.When
	switch {
	case r.Spike != nil:
		lb += r.Spike.Baseline.D()
	case r.Sequence != nil:
		conds = r.Sequence.When
		if k := r.Sequence.Known; k != nil {
			lb = max(lb, k.For.D())
		}
	}
	for _, c := range conds {
		for _, ch := range c.checks() {
			if ch.base != nil {
				lb = max(lb, c.Window.D()+ch.base.period())
			}
		}
	}
	return lb
}

// validate checks the rule's plain fields and parameters; expressions and
// templates are checked by Compile.
func (r *Rule) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !nameRE.MatchString(r.Name) || len(r.Name) > maxNameLen {
		add("name %q must be lower-case letters, digits and _ (starting with a letter), at most %d characters", r.Name, maxNameLen)
	}
	if !slices.Contains(Severities, r.Severity) {
		add("severity %q must be one of %s", r.Severity, strings.Join(Severities, ", "))
	}
	if strings.TrimSpace(r.Category) == "" {
		add("category is empty; name the attack class, e.g. brute_force")
	}
	if err := validateGroupBy(r.GroupBy); err != nil {
		errs = append(errs, err)
	}
	if _, n := r.kinds(); n != 1 {
		add("set exactly one of when, threshold, distinct, ratio, spike or sequence (found %d)", n)
	} else if err := r.validateKind(); err != nil {
		errs = append(errs, err)
	}
	if r.Of != "" && len(r.When) == 0 {
		add("of applies to when; for ratio and spike rules write it inside their block")
	}
	if len(r.AppSensor) > maxMetadata || len(r.Attack) > maxMetadata {
		add("list at most %d appsensor and attack references", maxMetadata)
	}
	for _, f := range r.EventLabels {
		if !isGroupField(f) || slices.Contains(r.GroupBy, f) {
			add("event_labels field %q must be a field (%s) not in group_by", f, groupFieldList())
		}
	}
	if len(r.EventLabels) > maxGroupBy || len(r.InhibitedBy) > maxMetadata || len(r.UnlessFiring) > maxMetadata {
		add("list at most %d event_labels and %d inhibited_by rules", maxGroupBy, maxMetadata)
	}
	if ra := r.ResolveAfter.D(); ra < 0 || ra > maxWindow {
		add("resolve_after %s must be between 0s and %s", ra, maxWindow)
	}
	if ri := r.RepeatInterval.D(); ri != 0 && ri < minRepeatInterval {
		add("repeat_interval %s must be at least %s", ri, minRepeatInterval)
	}
	for _, t := range []string{r.Summary, r.Description} {
		if len(t) > maxTemplateLen {
			add("summary and description must be at most %d bytes", maxTemplateLen)
		}
	}
	return errors.Join(errs...)
}

func (r *Rule) validateKind() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	count := func(key string, n, max int) {
		if n < 1 || n > max {
			add("%s is %d; set it between 1 and %d", key, n, max)
		}
	}
	window := func(key string, w Duration) {
		if w.D() < minWindow || w.D() > maxWindow {
			add("%s is %s; set it between %s and %s", key, w.D(), minWindow, maxWindow)
		}
	}
	switch {
	case len(r.When) > 0:
		errs = append(errs, validateConditions("when", r.When, r.Of != ""))
	case r.Threshold != nil:
		count("threshold.count", r.Threshold.Count, maxCount)
		window("threshold.window", r.Threshold.Window)
	case r.Distinct != nil:
		count("distinct.count", r.Distinct.Count, maxDistinct)
		window("distinct.window", r.Distinct.Window)
		if !isGroupField(r.Distinct.Field) {
			add("distinct.field %q is not a field that can be counted; use one of %s", r.Distinct.Field, groupFieldList())
		}
	case r.Ratio != nil:
		window("ratio.window", r.Ratio.Window)
		count("ratio.min_events", r.Ratio.MinEvents, maxCount)
		if !(r.Ratio.Ratio > 0 && r.Ratio.Ratio <= 1) {
			add("ratio.ratio is %g; set a share above 0 and at most 1, e.g. 0.5", r.Ratio.Ratio)
		}
	case r.Spike != nil:
		errs = append(errs, r.Spike.validate(window, count))
	case r.Sequence != nil:
		errs = append(errs, r.Sequence.validate(window, count))
	}
	return errors.Join(errs...)
}

func validateConditions(key string, cs Conditions, hasOf bool) error {
	if len(cs) > maxConditions {
		return fmt.Errorf("%s has %d conditions; use at most %d", key, len(cs), maxConditions)
	}
	var errs []error
	for i := range cs {
		errs = append(errs, cs[i].validate(fmt.Sprintf("%s[%d]", key, i), hasOf))
	}
	return errors.Join(errs...)
}

func (s *SequenceSpec) validate(window func(string, Duration), count func(string, int, int)) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case len(s.When) > 0 && (s.Count != 0 || s.Window != 0):
		add("sequence: set either count and window, or when")
	case len(s.When) > 0:
		errs = append(errs, validateConditions("sequence.when", s.When, s.Of != ""))
	default:
		count("sequence.count", s.Count, maxCount)
		window("sequence.window", s.Window)
		if s.Of != "" {
			add("sequence.of applies to sequence.when conditions with share or events checks")
		}
	}
	if s.First == "" || s.Then == "" {
		add("sequence needs both first and then expressions")
	}
	if s.ThenNew != "" && !isGroupField(s.ThenNew) {
		add("sequence.then_new %q is not a field; use one of %s", s.ThenNew, groupFieldList())
	}
	if k := s.Known; k != nil {
		if s.ThenNew == "" {
			add("sequence.known learns values of then_new; set then_new (e.g. source_ip)")
		}
		if f := k.For.D(); f < time.Minute || f > maxKnownFor {
			add("sequence.known.for is %s; set it between 1m and %s", f, maxKnownFor)
		}
		if k.Match == "" {
			add("sequence.known.match is empty; say which events show a value is normal, e.g. status < 400")
		}
	}
	return errors.Join(errs...)
}

func (s *SpikeSpec) validate(window func(string, Duration), count func(string, int, int)) error {
	var errs []error
	window("spike.window", s.Window)
	count("spike.min_events", s.MinEvents, maxCount)
	if b := s.Baseline.D(); b < s.Window.D() || b > maxBaseline {
		errs = append(errs, fmt.Errorf("spike.baseline is %s; set it between the window (%s) and %s", b, s.Window.D(), maxBaseline))
	}
	if !(s.Factor > 1 && s.Factor <= 1e6) {
		errs = append(errs, fmt.Errorf("spike.factor is %g; set it above 1, e.g. 3", s.Factor))
	}
	if s.MinValue < 0 || (s.Of != "" && s.MinValue > 1) {
		errs = append(errs, fmt.Errorf("spike.min_value is %g; set it at least 0 (and at most 1 for a ratio)", s.MinValue))
	}
	return errors.Join(errs...)
}

// groupFields are the event fields usable in group_by and distinct.field,
// besides attrs.<key>.
var groupFields = []string{"service", "method", "endpoint", "status", "path", "source_ip", "user", "client_id", "user_agent",
	"source_prefix", "status_class", "source_list"}

func isGroupField(f string) bool {
	if k, ok := strings.CutPrefix(f, "attrs."); ok {
		return k != "" && len(k) <= 64
	}
	return slices.Contains(groupFields, f)
}

func groupFieldList() string { return strings.Join(groupFields, ", ") + ", attrs.<key>" }

func validateGroupBy(fields []string) error {
	if len(fields) > maxGroupBy {
		return fmt.Errorf("group_by has %d fields; use at most %d", len(fields), maxGroupBy)
	}
	for i, f := range fields {
		if !isGroupField(f) {
			return fmt.Errorf("group_by field %q is unknown; use %s", f, groupFieldList())
		}
		if slices.Contains(fields[:i], f) {
			return fmt.Errorf("group_by lists %q twice", f)
		}
	}
	return nil
}

// templateFuncs are the functions templates may call besides text/template's.
var templateFuncs = template.FuncMap{
	// percent formats a share: 0.123 becomes "12.3%".
	"percent": func(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" },
}

// parseTemplate parses a summary or description template; it is executed
// with TemplateData.
func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
}
