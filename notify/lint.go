package notify

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Lint returns warnings about routes that no alert of the loaded rules can
// match: a rule or category that no rule has, a label that no rule groups by
// (a missing label is empty), or conditions that no single rule satisfies
// together. Such a route is valid (rules may be added later) but most
// likely a typo. Call it on a validated Config.
func (c Config) Lint(rules []*detect.Rule) []string {
	var out []string
	for i := range c.Routes {
		if w := lintRoute(&c.Routes[i], rules); w != "" {
			out = append(out, fmt.Sprintf("routes[%d]%s", i, w))
		}
	}
	return out
}

// condition is one label condition of a route.
type condition struct {
	where  string // "match.category" or "match_re.rule"
	label  string
	accept func(string) bool
}

func routeConditions(rc *RouteConfig) []condition {
	var cs []condition
	for _, k := range slices.Sorted(maps.Keys(rc.Match)) {
		vs := rc.Match[k]
		cs = append(cs, condition{where: "match." + k, label: k, accept: func(v string) bool { return slices.Contains(vs, v) }})
	}
	for _, k := range slices.Sorted(maps.Keys(rc.MatchRE)) {
		re, err := regexp.Compile(anchored(rc.MatchRE[k]))
		if err != nil {
			continue // Validate reports it
		}
		cs = append(cs, condition{where: "match_re." + k, label: k, accept: re.MatchString})
	}
	return cs
}

// satisfiedBy reports whether an alert of rule r can meet the condition.
func (c condition) satisfiedBy(r *detect.Rule) bool {
	switch c.label {
	case "rule":
		return c.accept(r.Name)
	case "severity":
		return c.accept(r.Severity)
	case "category":
		return c.accept(r.Category)
	case "incident_severity":
		// An incident is at least as severe as each of its alerts; an
		// alert has no incident when correlation is off.
		return c.accept("") || slices.ContainsFunc(detect.Severities, func(s string) bool {
			return receiver.SeverityRank(s) >= receiver.SeverityRank(r.Severity) && c.accept(s)
		})
	case "incident_id":
		return true
	}
	// A group_by label can have any value, and Validate refused a condition
	// that matches none; a label the rule lacks is empty.
	return slices.Contains(r.GroupBy, c.label) || c.accept("")
}

// lintRoute returns the warning for one route, after its "routes[i]", or "".
func lintRoute(rc *RouteConfig, rules []*detect.Rule) string {
	conds := routeConditions(rc)
	if len(conds) == 0 {
		return ""
	}
	for _, c := range conds {
		if !slices.ContainsFunc(rules, c.satisfiedBy) {
			return fmt.Sprintf(".%s: %s; the route matches no alert (check the spelling)", c.where, missing(c.label, rules))
		}
	}
	for _, r := range rules {
		if allSatisfied(conds, r) {
			return ""
		}
	}
	return ": no loaded rule meets all its conditions together; the route matches no alert"
}

func allSatisfied(conds []condition, r *detect.Rule) bool {
	for _, c := range conds {
		if !c.satisfiedBy(r) {
			return false
		}
	}
	return true
}

// missing says that no loaded rule has a fitting value of label, and lists
// the values they have.
func missing(label string, rules []*detect.Rule) string {
	seen := map[string]bool{}
	for _, r := range rules {
		switch label {
		case "rule":
			seen[r.Name] = true
		case "severity", "incident_severity":
			seen[r.Severity] = true
		case "category":
			seen[r.Category] = true
		default:
			for _, g := range r.GroupBy {
				seen[g] = true
			}
		}
	}
	have := strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
	switch label {
	case "rule":
		return "no loaded rule has that name (rules: " + have + ")"
	case "severity":
		return "no loaded rule has that severity (severities: " + have + ")"
	case "category":
		return "no loaded rule has that category (categories: " + have + ")"
	case "incident_severity":
		return "no loaded rule's alerts can be in an incident of that severity: an incident is at least as severe as each of its alerts (rule severities: " + have + ")"
	}
	return fmt.Sprintf("no loaded rule groups by %s (their labels: %s), and the condition does not match a missing label", label, have)
}
