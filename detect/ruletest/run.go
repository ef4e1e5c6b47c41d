package ruletest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
)

// Runner runs rule test files and writes a report to Out.
type Runner struct {
	// Rules are used by tests whose file names no rule_files.
	Rules []*detect.Rule
	// Load loads those rules again with lists, for a test file that fills
	// in lists (honey accounts, address ranges) the rule files declare.
	Load func(lists map[string]detect.ListSpec) ([]*detect.Rule, error)
	Out  io.Writer
}

const maxTestFile = 16 << 20

// RunFile runs every test in the file at path. err reports a file that could
// not be read or parsed; failing tests are counted in failed.
func (r *Runner) RunFile(path string) (passed, failed int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read rule test file: %w", err)
	}
	if len(data) > maxTestFile {
		return 0, 0, fmt.Errorf("%s: file is over %d bytes", path, maxTestFile)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	rules := r.Rules
	switch {
	case len(f.RuleFiles) > 0:
		if rules, err = loadRuleFiles(filepath.Dir(path), f.RuleFiles, f.Lists); err != nil {
			return 0, 0, err
		}
	case len(f.Lists) > 0 && r.Load == nil:
		return 0, 0, fmt.Errorf("%s: lists need rule_files here", path)
	case len(f.Lists) > 0:
		if rules, err = r.Load(f.Lists); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(f.Tests) == 0 {
		return 0, 0, fmt.Errorf("%s: no tests; add a tests: list", path)
	}
	for i := range f.Tests {
		t := &f.Tests[i]
		diff, err := t.run(rules, filepath.Dir(path))
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(r.Out, "FAIL %s: %q: %v\n", path, t.Name, err)
		case diff != "":
			failed++
			fmt.Fprintf(r.Out, "FAIL %s: %q\n%s", path, t.Name, diff)
		default:
			passed++
			fmt.Fprintf(r.Out, "ok   %s: %q\n", path, t.Name)
		}
	}
	return passed, failed, nil
}

func loadRuleFiles(dir string, names []string, lists map[string]detect.ListSpec) ([]*detect.Rule, error) {
	var all []*detect.Rule
	for _, n := range names {
		p := filepath.Join(dir, n)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read rule file: %w", err)
		}
		rs, err := detect.ParseRulesWith(p, data, lists)
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	return all, nil
}

// run runs one test and returns a description of the differences.
func (t *Test) run(rules []*detect.Rule, dir string) (string, error) {
	if t.Name == "" {
		return "", errors.New("test has no name")
	}
	if t.Start.IsZero() {
		t.Start = defaultStart
	}
	evs, err := t.events(dir)
	if err != nil {
		return "", err
	}
	lateness := 5 * time.Second
	if t.Lateness != nil {
		lateness = t.Lateness.D()
	}
	var got []detect.Alert
	e, err := detect.New(rules, detect.Options{
		StateMemory: detect.MinStateMemory, Lateness: lateness,
		Emit: func(a detect.Alert) { got = append(got, a) },
	})
	if err != nil {
		return "", err
	}
	defer e.Close()
	for _, ev := range evs {
		e.Process(ev)
	}
	e.Flush()
	return t.compare(got), nil
}

// events expands the blocks and the input file, ordered by time (ties keep
// block order).
func (t *Test) events(dir string) ([]*event.Event, error) {
	var evs []*event.Event
	for bi, b := range t.Events {
		n := max(b.Count, 1)
		if len(evs)+n > maxEvents {
			return nil, fmt.Errorf("more than %d events", maxEvents)
		}
		for i := range n {
			ts := t.Start.Add(b.At.D() + time.Duration(i)*b.Every.D())
			ev, err := b.Event.toEvent(ts, i, fmt.Sprintf("t%d-%d", bi, i))
			if err != nil {
				return nil, fmt.Errorf("events[%d]: %w", bi, err)
			}
			evs = append(evs, ev)
		}
	}
	if t.InputFile != "" {
		more, err := readInput(filepath.Join(dir, t.InputFile))
		if err != nil {
			return nil, err
		}
		evs = append(evs, more...)
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
	return evs, nil
}

// readInput reads JSON lines in the wire schema.
func readInput(path string) ([]*event.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input file: %w", err)
	}
	defer f.Close()
	var evs []*event.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec struct {
			TS time.Time `json:"ts"`
			EventSpec
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		ev, err := rec.toEvent(rec.TS, 0, fmt.Sprintf("f-%d", line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return evs, nil
}

// compare matches expected transitions to actual ones; every actual
// transition must be expected.
func (t *Test) compare(got []detect.Alert) string {
	used := make([]bool, len(got))
	var b strings.Builder
	for _, x := range t.Expect {
		found := false
		for i, a := range got {
			if !used[i] && t.matches(x, a) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			fmt.Fprintf(&b, "  missing:    %s\n", t.describeExpect(x))
		}
	}
	for i, a := range got {
		if !used[i] {
			fmt.Fprintf(&b, "  unexpected: %s\n", t.describe(a))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	b.WriteString("  got:\n")
	for _, a := range got {
		fmt.Fprintf(&b, "    %s\n", t.describe(a))
	}
	if len(got) == 0 {
		b.WriteString("    (no transitions)\n")
	}
	return b.String()
}

func (t *Test) matches(x Expect, a detect.Alert) bool {
	if x.Rule != a.Rule || x.Transition != a.Transition || !maps.Equal(x.Labels, a.Labels) && !(len(x.Labels) == 0 && len(a.Labels) == 0) {
		return false
	}
	if x.By == nil {
		return true
	}
	at := a.StartsAt
	if a.Transition == detect.TransitionResolved {
		at = a.EndsAt
	}
	return !at.After(t.Start.Add(x.By.D()))
}

func formatLabels(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (t *Test) describeExpect(x Expect) string {
	s := fmt.Sprintf("%s %s %s", x.Rule, x.Transition, formatLabels(x.Labels))
	if x.By != nil {
		s += " by +" + x.By.D().String()
	}
	return s
}

func (t *Test) describe(a detect.Alert) string {
	at := a.StartsAt
	if a.Transition == detect.TransitionResolved {
		at = a.EndsAt
	}
	return fmt.Sprintf("%s %s %s at +%s (value %.4g, threshold %.4g)",
		a.Rule, a.Transition, formatLabels(a.Labels), at.Sub(t.Start), a.Value, a.Threshold)
}
