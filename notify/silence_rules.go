package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// The mute-all guard against the loaded rules. checkNotMuteAll refuses a
// silence that would mute every alert any rule could raise; this refuses one
// that would mute every alert the rules loaded now can raise, alone or
// together with the other silences in force during its life. A rule's alerts
// are split by the severities they can have (detect.Rule.AlertSeverities):
// a class of alerts shares rule, severity and category. A matcher on another
// label judges a class as checkNotMuteAll judges that label: a label the
// rule's alerts can carry (detect.Rule.AlertLabels, incident_id) may have
// any value, one they never carry is empty, and incident_severity is empty
// or at least the alert's severity.

// alertClass is the alerts of one loaded rule with one severity.
type alertClass struct {
	rule     *detect.Rule
	severity string
	carries  map[string]bool // labels its alerts can carry
}

func alertClasses(rules []*detect.Rule) []alertClass {
	var out []alertClass
	for _, r := range rules {
		carries := map[string]bool{"incident_id": true}
		for _, l := range r.AlertLabels() {
			carries[l] = true
		}
		for _, s := range r.AlertSeverities() {
			out = append(out, alertClass{rule: r, severity: s, carries: carries})
		}
	}
	return out
}

// classMatcher is a matcher ready to be judged against alert classes.
type classMatcher struct {
	*Matcher
	// anyValue: it accepts every value, as a label an alert carries may
	// have; when deciding that took too many steps (complex), it is assumed.
	anyValue, complex bool
}

func newClassMatcher(m *Matcher) classMatcher {
	cm := classMatcher{Matcher: m}
	switch m.Name {
	case "rule", "severity", "category", "incident_severity":
		return cm // judged on the class's own values
	}
	if m.Op == OpRegex || m.Op == OpNotRegex {
		all, err := domainCheck(m.Name, m.Value, m.Op == OpRegex)
		cm.anyValue, cm.complex = all || err != nil, err != nil
	}
	return cm
}

// accepts reports whether the matcher accepts every alert of c.
func (m classMatcher) accepts(c alertClass) bool {
	switch m.Name {
	case "rule":
		return m.matches(c.rule.Name)
	case "severity":
		return m.matches(c.severity)
	case "category":
		return m.matches(c.rule.Category)
	case "incident_severity":
		// An incident is at least as severe as each of its alerts.
		rank := max(slices.Index(detect.Severities, c.severity), 0)
		return m.matches("") && !slices.ContainsFunc(detect.Severities[rank:], func(s string) bool { return !m.matches(s) })
	}
	if c.carries[m.Name] {
		return m.anyValue
	}
	return m.matches("")
}

// mutedClasses returns, for each class, whether s mutes every alert of it,
// and whether a regular expression was too complex to judge (it is then
// taken to accept every value).
func (s *Silence) mutedClasses(classes []alertClass) ([]bool, bool) {
	ms := make([]classMatcher, len(s.Matchers))
	complex := false
	for i := range s.Matchers {
		ms[i] = newClassMatcher(&s.Matchers[i])
		complex = complex || ms[i].complex
	}
	out := make([]bool, len(classes))
	for k, c := range classes {
		out[k] = !slices.ContainsFunc(ms, func(m classMatcher) bool { return !m.accepts(c) })
	}
	return out, complex
}

// checkNotMuteLoaded refuses s, validated, when it would mute every alert
// the loaded rules can raise: alone, or with the other silences in force at
// some moment of its life. The silences in force can only grow when one
// starts, so s is judged at its start and at each later start of another
// within its life.
func (s *Silence) checkNotMuteLoaded(rules []*detect.Rule, others []Silence, now time.Time) error {
	classes := alertClasses(rules)
	if len(classes) == 0 {
		return nil
	}
	mine, complex := s.mutedClasses(classes)
	if !slices.Contains(mine, false) {
		return muteLoadedError(s, rules, complex)
	}
	moments := []time.Time{s.StartsAt}
	for _, o := range others {
		if o.StartsAt.After(s.StartsAt) && o.StartsAt.Before(s.EndsAt) {
			moments = append(moments, o.StartsAt)
		}
	}
	slices.SortFunc(moments, time.Time.Compare)
	muted := map[string][]bool{} // by silence id, computed once
	for _, t := range moments {
		union := slices.Clone(mine)
		var with []*Silence
		for i := range others {
			o := &others[i]
			if o.statusAt(t) != SilenceActive {
				continue
			}
			if _, ok := muted[o.ID]; !ok {
				muted[o.ID], _ = o.mutedClasses(classes)
			}
			added := false
			for k, m := range muted[o.ID] {
				if m && !union[k] {
					union[k], added = true, true
				}
			}
			if added {
				with = append(with, o)
			}
		}
		if !slices.Contains(union, false) {
			return togetherError(mine, classes, with, t, now)
		}
	}
	return nil
}

// muteLoadedError says that s alone would mute every loaded rule's alerts.
func muteLoadedError(s *Silence, rules []*detect.Rule, complex bool) error {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	slices.Sort(names)
	ms := make([]string, len(s.Matchers))
	for i, m := range s.Matchers {
		ms[i] = fmt.Sprintf("%s %s %q", m.Name, m.Op, m.Value)
	}
	what := "its matcher " + ms[0] + " accepts"
	if len(ms) > 1 {
		what = "its matchers " + strings.Join(ms, ", ") + " together accept"
	}
	msg := fmt.Sprintf("the silence would mute every alert the loaded rules can raise: %s all alerts of %s", what, rulesNamed(names))
	if complex {
		msg += " (a regular expression too complex to check is taken to accept every value)"
	}
	return fmt.Errorf(`%s; name what to mute, e.g. {"name": "rule", "op": "=", "value": %q}`, msg, names[0])
}

// togetherError says that s would mute every loaded rule's alerts with the
// silences with, in force at t: mine says which classes s mutes itself.
func togetherError(mine []bool, classes []alertClass, with []*Silence, t, now time.Time) error {
	when := "now"
	if t.After(now) {
		when = "from " + t.UTC().Format(time.RFC3339)
	}
	ids := make([]string, len(with))
	for i, o := range with {
		comment := o.Comment
		if r := []rune(comment); len(r) > 60 {
			comment = string(r[:60]) + "…"
		}
		ids[i] = fmt.Sprintf("%s (by %s: %q)", o.ID, o.CreatedBy, comment)
	}
	silences := "silence " + ids[0]
	if len(ids) > 1 {
		silences = "silences " + strings.Join(ids, ", ")
	}
	if !slices.Contains(mine, true) {
		return fmt.Errorf("the %s, in force %s, already mute every alert the loaded rules can raise; expire those no longer needed (DELETE /api/v1/silences/{id}) before adding another",
			silences, when)
	}
	rest := "that one mutes the rest"
	if len(with) > 1 {
		rest = "they mute the rest"
	}
	return fmt.Errorf("together with %s, in force %s, the silence would mute every alert the loaded rules can raise: it mutes %s, and %s; narrow it to the alerts you mean, or expire a silence no longer needed (DELETE /api/v1/silences/{id})",
		silences, when, describeMuted(mine, classes), rest)
}

// describeMuted names the rules whose classes muted holds: a rule whole, or
// the alerts of the severities muted.
func describeMuted(muted []bool, classes []alertClass) string {
	var whole, part []string
	for i := 0; i < len(classes); {
		r := classes[i].rule
		var sevs []string
		n := 0
		for ; i < len(classes) && classes[i].rule == r; i++ {
			n++
			if muted[i] {
				sevs = append(sevs, classes[i].severity)
			}
		}
		switch {
		case len(sevs) == n:
			whole = append(whole, r.Name)
		case len(sevs) > 0:
			part = append(part, fmt.Sprintf("the %s alerts of %s", strings.Join(sevs, " and "), r.Name))
		}
	}
	var out []string
	if len(whole) > 0 {
		out = append(out, "all alerts of "+rulesNamed(whole))
	}
	return strings.Join(append(out, part...), ", ")
}

// rulesNamed says "rule a" or "rules a, b", with at most ten names and how
// many were left out.
func rulesNamed(names []string) string {
	const most = 10
	if len(names) == 1 {
		return "rule " + names[0]
	}
	if len(names) <= most {
		return "rules " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("rules %s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}
