package detect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// compiled is a rule ready to run: predicates compiled once, bucket geometry
// fixed, templates parsed.
type compiled struct {
	kind                 Kind
	match, of            *predicate // of: ratio, spike (nil = every event)
	first, then          *predicate // sequence
	groupBy              []field
	alwaysHot            bool // grouped by service alone, or not at all: see hot.go
	distinct             field
	window               time.Duration
	g                    int64   // fine bucket width, ns
	nb                   int64   // fine buckets in the window
	gb                   int64   // coarse bucket width (spike), ns
	nbb                  int64   // coarse buckets in the baseline (spike)
	setCap               int     // distinct values kept per group
	count                int     // threshold, distinct, sequence
	ratio                float64 // ratio
	minEvents            int     // ratio, spike
	factor, minValue     float64 // spike
	resolveAfter, repeat time.Duration
	summary, description *template.Template
}

// field reads one event field as a group key part and as a label value.
type field struct {
	name  string
	attr  string // set for attrs.<key>
	key   func(dst []byte, ev *event.Event) ([]byte, bool)
	label func(ev *event.Event) string
}

// Compile validates r and compiles its expressions and templates. It is
// idempotent; New compiles rules that have not been compiled yet.
func (r *Rule) Compile() error {
	if r.c != nil {
		return nil
	}
	if err := r.validate(); err != nil {
		return err
	}
	c := &compiled{kind: r.Kind(), window: r.Window()}
	var errs []error
	pred := func(key, src string, dflt bool) *predicate {
		if src == "" && dflt {
			return nil
		}
		p, err := compilePredicate(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return p
	}
	c.match = pred("match", r.Match, true)
	switch {
	case r.Ratio != nil:
		c.of = pred("ratio.of", r.Ratio.Of, true)
	case r.Spike != nil:
		c.of = pred("spike.of", r.Spike.Of, true)
	case r.Sequence != nil:
		c.first = pred("sequence.first", r.Sequence.First, false)
		c.then = pred("sequence.then", r.Sequence.Then, false)
	case r.Distinct != nil:
		c.distinct = newField(r.Distinct.Field)
		c.setCap = max(r.Distinct.Count+r.Distinct.Count/2, 8)
	}
	c.alwaysHot = true
	for _, f := range r.GroupBy {
		c.groupBy = append(c.groupBy, newField(f))
		c.alwaysHot = c.alwaysHot && f == "service"
	}
	c.geometry(r)
	c.params(r)
	var err error
	if c.summary, err = r.template("summary", r.Summary, defaultSummary); err != nil {
		errs = append(errs, err)
	}
	if c.description, err = r.template("description", r.Description, ""); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.c = c
	return nil
}

const defaultSummary = `{{ .Rule }}{{ range $k, $v := .Labels }} {{ $k }}={{ $v }}{{ end }}: {{ .Value }} (threshold {{ .Threshold }}) in {{ .Window }}`

// geometry fixes the bucket widths: about 60 buckets per window, at least 1 s.
// The window holds ceil(W/g)+1 buckets, so every event within W of the
// evaluation time counts, and events up to g older may count too.
func (c *compiled) geometry(r *Rule) {
	w := int64(c.window)
	c.g = max(w/60, int64(time.Second))
	c.nb = (w+c.g-1)/c.g + 1
	if r.Spike != nil {
		b := int64(r.Spike.Baseline)
		gb := max(b/60, c.g)
		c.gb = (gb + c.g - 1) / c.g * c.g
		c.nbb = (b + c.gb - 1) / c.gb
	}
	c.resolveAfter = r.ResolveAfter.D()
	if c.resolveAfter == 0 {
		c.resolveAfter = c.window
	}
	c.repeat = r.RepeatInterval.D()
	if c.repeat == 0 {
		c.repeat = defaultRepeat
	}
}

func (c *compiled) params(r *Rule) {
	switch {
	case r.Threshold != nil:
		c.count = r.Threshold.Count
	case r.Distinct != nil:
		c.count = r.Distinct.Count
	case r.Ratio != nil:
		c.ratio, c.minEvents = r.Ratio.Ratio, r.Ratio.MinEvents
	case r.Spike != nil:
		c.factor, c.minValue, c.minEvents = r.Spike.Factor, r.Spike.MinValue, r.Spike.MinEvents
	case r.Sequence != nil:
		c.count = r.Sequence.Count
	}
}

// horizon is how long after a group's last event its state can still matter.
func (c *compiled) horizon() time.Duration {
	h := time.Duration(c.nb * c.g)
	if c.kind == KindSpike {
		h += time.Duration((c.nbb + 1) * c.gb)
	}
	return h
}

func (r *Rule) template(key, text, dflt string) (*template.Template, error) {
	if text == "" {
		text = dflt
	}
	t, err := parseTemplate(key, text)
	if err != nil {
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	labels := map[string]string{}
	for _, f := range r.GroupBy {
		labels[f] = "x"
	}
	// The check run refuses a label the rule never has: at run time a
	// missing label would render empty, and {{ .Labels.usr }} would quietly
	// drop the user name from every alert.
	check, err := t.Clone()
	if err != nil {
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	var buf bytes.Buffer
	if err := check.Option("missingkey=error").Execute(&buf, TemplateData{Rule: r.Name, Labels: labels, Window: "1m0s"}); err != nil {
		if strings.Contains(err.Error(), "map has no entry for key") {
			return nil, fmt.Errorf("%s template names a label this rule does not have: %w; its labels are its group_by fields (%s)", key, err, strings.Join(r.GroupBy, ", "))
		}
		return nil, fmt.Errorf("%s template: %w", key, err)
	}
	return t, nil
}

// TemplateData is what summary and description templates see.
type TemplateData struct {
	Rule, Category, Severity string
	Labels                   map[string]string
	Value, Threshold         float64
	Window                   string
}

func newField(name string) field {
	f := field{name: name}
	if k, ok := strings.CutPrefix(name, "attrs."); ok {
		f.attr = k
		f.label = func(ev *event.Event) string { return ev.Attrs[k] }
	}
	switch name {
	case "source_ip":
		f.key = func(dst []byte, ev *event.Event) ([]byte, bool) {
			if !ev.SourceIP.IsValid() {
				return dst, false
			}
			b := ev.SourceIP.As16()
			return append(dst, b[:]...), true
		}
		f.label = func(ev *event.Event) string {
			if !ev.SourceIP.IsValid() {
				return ""
			}
			return ev.SourceIP.String()
		}
		return f
	case "status":
		f.label = func(ev *event.Event) string { return strconv.Itoa(ev.Status) }
	case "service":
		f.label = func(ev *event.Event) string { return ev.Service }
	case "method":
		f.label = func(ev *event.Event) string { return ev.Method }
	case "endpoint":
		f.label = func(ev *event.Event) string { return ev.Endpoint }
	case "path":
		f.label = func(ev *event.Event) string { return ev.Path }
	case "user":
		f.label = func(ev *event.Event) string { return ev.User }
	case "client_id":
		f.label = func(ev *event.Event) string { return ev.ClientID }
	case "user_agent":
		f.label = func(ev *event.Event) string { return ev.UserAgent }
	}
	label := f.label
	f.key = func(dst []byte, ev *event.Event) ([]byte, bool) {
		v := label(ev)
		if v == "" {
			return dst, false
		}
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		return append(dst, v...), true
	}
	return f
}
