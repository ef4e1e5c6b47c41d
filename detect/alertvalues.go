package detect

import "slices"

// What the alerts of a rule can look like, for code that judges label
// matchers (silences, routes) against the loaded rules rather than against
// every alert possible.

// AlertLabels returns the labels r's alerts can carry besides rule,
// severity, category and their incident's: the group_by and event_labels
// fields, and source_list when r groups by source_ip or source_prefix
// (Engine.enrich adds it for an address in an operator CIDR list). A label
// returned may be missing (empty) on some alerts.
func (r *Rule) AlertLabels() []string {
	out := slices.Concat(r.GroupBy, r.EventLabels)
	if r.listRaises() && !slices.Contains(out, "source_list") {
		out = append(out, "source_list")
	}
	return out
}

// AlertSeverities returns the severities r's alerts can have, lowest
// first: r's own, and those the CIDR lists it was compiled with raise it to
// for a listed source address (see Engine.enrich). A list without entries
// raises nothing.
func (r *Rule) AlertSeverities() []string {
	out := []string{r.Severity}
	if r.c != nil && r.listRaises() {
		for _, cl := range r.c.lists.cidrs {
			if cl.raise > 0 && len(cl.prefixes) > 0 {
				out = append(out, raiseSeverity(r.Severity, cl.raise))
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(Severities, a) - slices.Index(Severities, b) })
	return slices.Compact(out)
}

// listRaises reports whether Engine.enrich looks up r's alerts in the CIDR
// lists: they are about an address and not grouped by the list itself.
func (r *Rule) listRaises() bool {
	byAddr := slices.Contains(r.GroupBy, "source_ip") || slices.Contains(r.GroupBy, "source_prefix")
	return byAddr && !slices.Contains(r.GroupBy, "source_list")
}
