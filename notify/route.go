package notify

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/detect"
)

// alertLabels returns the labels routes and silences match on: the alert's
// labels plus rule, severity and category, and incident_id and
// incident_severity when the alert belongs to an incident.
func alertLabels(a detect.Alert) map[string]string {
	m := make(map[string]string, len(a.Labels)+5)
	maps.Copy(m, a.Labels)
	m["rule"] = a.Rule
	m["severity"] = a.Severity
	for k, v := range map[string]string{"category": a.Category, "incident_id": a.IncidentID, "incident_severity": a.IncidentSeverity} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// route is a compiled RouteConfig.
type route struct {
	eq          map[string][]string
	re          map[string]*regexp.Regexp
	receivers   []string
	cont        bool
	perIncident bool
}

func (r *route) matches(labels map[string]string) bool {
	for k, vs := range r.eq {
		if !slices.Contains(vs, labels[k]) {
			return false
		}
	}
	for k, re := range r.re {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// router picks receivers for an alert.
type router struct{ routes []route }

func newRouter(rcs []RouteConfig) (*router, error) {
	r := &router{}
	for i, rc := range rcs {
		rt := route{eq: map[string][]string{}, re: map[string]*regexp.Regexp{}, receivers: rc.Receivers,
			cont: rc.Continue, perIncident: rc.PerIncident}
		for k, vs := range rc.Match {
			rt.eq[k] = vs
		}
		for k, expr := range rc.MatchRE {
			re, err := regexp.Compile(anchored(expr))
			if err != nil {
				return nil, fmt.Errorf("routes[%d].match_re.%s: %w", i, k, err)
			}
			rt.re[k] = re
		}
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

// receivers returns the receivers for an alert with these labels, each once,
// in route order, and those of them that hear of an incident once: every
// matching route that names them says per_incident.
func (r *router) receivers(labels map[string]string) ([]string, map[string]bool) {
	var out []string
	perIncident := map[string]bool{}
	for i := range r.routes {
		rt := &r.routes[i]
		if !rt.matches(labels) {
			continue
		}
		for _, name := range rt.receivers {
			if !slices.Contains(out, name) {
				out = append(out, name)
				perIncident[name] = rt.perIncident
			}
			perIncident[name] = perIncident[name] && rt.perIncident
		}
		if !rt.cont {
			break
		}
	}
	maps.DeleteFunc(perIncident, func(_ string, per bool) bool { return !per })
	return out, perIncident
}

// validateRoutes checks receivers exist, matchers are well formed, a default
// route exists and every route can be reached.
func validateRoutes(rcs []RouteConfig, receivers map[string]bool) []error {
	var errs []error
	if len(rcs) == 0 {
		return []error{errors.New("routes: none configured; add at least a default route without match, e.g. - receivers: [console]")}
	}
	hasDefault := false
	for i := range rcs {
		rc := &rcs[i]
		errs = append(errs, validateRoute(i, rc, receivers)...)
		if j, ok := shadowedBy(rcs, i); ok {
			errs = append(errs, fmt.Errorf("routes[%d] is unreachable: routes[%d] before it matches every alert it would and has no continue: true; reorder them or add continue: true to routes[%d]", i, j, j))
		}
		hasDefault = hasDefault || rc.catchAll()
	}
	if !hasDefault {
		errs = append(errs, errors.New("routes: no default route; add a last route without match so no alert goes unrouted, e.g. - receivers: [console]"))
	}
	return errs
}

func validateRoute(i int, rc *RouteConfig, receivers map[string]bool) []error {
	var errs []error
	if len(rc.Receivers) == 0 {
		errs = append(errs, fmt.Errorf("routes[%d]: receivers is empty; name at least one receiver", i))
	}
	for _, name := range rc.Receivers {
		if !receivers[name] {
			errs = append(errs, fmt.Errorf("routes[%d]: unknown receiver %q; define it under receivers: or fix the name (known: %v)", i, name, slices.Sorted(maps.Keys(receivers))))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rc.Match)) {
		vs := rc.Match[k]
		if !labelNameRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("routes[%d].match: %q is not a label name", i, k))
		}
		if len(vs) == 0 {
			errs = append(errs, fmt.Errorf("routes[%d].match.%s: list at least one value", i, k))
		}
		for _, v := range vs {
			if !regexp.MustCompile(anchored(labelDomain(k))).MatchString(v) {
				errs = append(errs, fmt.Errorf("routes[%d].match.%s: %q is not a %s, so the route would never match it; fix the value", i, k, v, domainText(k)))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rc.MatchRE)) {
		expr := rc.MatchRE[k]
		if !labelNameRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("routes[%d].match_re: %q is not a label name", i, k))
		}
		if _, err := regexp.Compile(anchored(expr)); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d].match_re.%s: %w", i, k, err))
			continue
		}
		// A regular expression too complex to decide is given the benefit
		// of the doubt.
		if some, err := matchesSome(k, expr); err == nil && !some {
			errs = append(errs, fmt.Errorf("routes[%d].match_re.%s: %q can match no %s, so the route would never match; fix the expression", i, k, expr, domainText(k)))
		}
	}
	return errs
}

// domainText describes the values label can have, for error messages.
func domainText(label string) string {
	switch label {
	case "rule":
		return "rule name (lower-case letters, digits and _, starting with a letter, at most 64)"
	case "severity":
		return "severity (" + strings.Join(detect.Severities, ", ") + ")"
	case "incident_severity":
		return "severity (" + strings.Join(detect.Severities, ", ") + "), or empty for an alert without an incident"
	case "category":
		return "category (text that is not blank)"
	default:
		return "value"
	}
}

// shadowedBy reports the first earlier route without continue that matches
// every alert routes[i] matches, which makes routes[i] unreachable.
func shadowedBy(rcs []RouteConfig, i int) (int, bool) {
	for j := range i {
		if !rcs[j].Continue && covers(&rcs[j], &rcs[i]) {
			return j, true
		}
	}
	return 0, false
}

// covers reports whether every alert matching b also matches a, judged
// conservatively: each condition of a must appear in b, as the same regular
// expression or as an equality whose values are a subset of a's.
func covers(a, b *RouteConfig) bool {
	for k, avs := range a.Match {
		bvs, ok := b.Match[k]
		if !ok || len(bvs) == 0 {
			return false
		}
		for _, v := range bvs {
			if !slices.Contains(avs, v) {
				return false
			}
		}
	}
	for k, are := range a.MatchRE {
		if bre, ok := b.MatchRE[k]; !ok || bre != are {
			return false
		}
	}
	return true
}
