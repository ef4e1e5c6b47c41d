package dashboards

import (
	"regexp"
	"slices"
	"strings"
)

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	braced     = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
)

// MetricNames returns the metric names an expression selects, in order of
// first use, with a histogram's _bucket suffix removed. It is a
// scanner for the expressions of Vigil's dashboards and alerting rules, not a
// PromQL parser; the tests use it to check those expressions against the
// metrics Vigil exports.
func MetricNames(expr string) []string {
	s := quoted.ReplaceAllString(expr, `""`)
	s = braced.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var names []string
	for _, id := range identifier.FindAllString(s, -1) {
		switch id = strings.TrimSpace(id); {
		case strings.HasSuffix(id, "("): // a function call
			continue
		case id == "and", id == "or", id == "unless", id == "bool", id == "offset":
			continue
		}
		name := strings.TrimSuffix(id, "_bucket")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}
