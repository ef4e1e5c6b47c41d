package detect

import "strings"

// Entities are what incident correlation needs of the event that made an
// alert fire, beyond the alert's labels: its service and endpoint, its
// address, the address's network (source_prefix), user and client id, with
// their raw values (Options.Label rewrites labels, not these). The engine
// sets them on every transition it emits, so that a Correlator outside the
// engine, or a stage judging inhibited_by on alerts from several engines,
// can do what the engine does. They are not part of an alert's JSON.
type Entities struct {
	Service, Endpoint, SourceIP, SourcePrefix, User, ClientID string
}

// entities are the current event's, copied out of its buffers.
func (e *Engine) entities() Entities {
	ev := e.ctx.ev
	return Entities{
		Service: strings.Clone(ev.Service), Endpoint: strings.Clone(ev.Endpoint),
		SourceIP: e.ctx.sourceIP(), SourcePrefix: e.ctx.sourcePrefix(),
		User: strings.Clone(ev.User), ClientID: strings.Clone(ev.ClientID),
	}
}

// Correlator puts alert transitions in incidents outside an engine, with
// the engine's own correlation: given the transitions of one or several
// engines running rules (with incidents disabled, or whatever they chose),
// in the order of their event time, it sets IncidentID and
// IncidentSeverity as one engine running all of them would have. A
// downstream stage merging the alerts of partitioned engines uses it.
// It is not safe for concurrent use.
type Correlator struct {
	co      *correlator
	groupBy map[string][]string  // by rule name
	firing  map[string]*incident // by fingerprint
}

// NewCorrelator returns a Correlator for the alerts of rules.
func NewCorrelator(o IncidentOptions, rules []*Rule) *Correlator {
	c := &Correlator{co: newCorrelator(o), groupBy: map[string][]string{}, firing: map[string]*incident{}}
	for _, r := range rules {
		c.groupBy[r.Name] = r.GroupBy
	}
	return c
}

// Correlate sets a's incident. A firing transition opens or joins one by
// a's Entities, and a's later transitions carry it until one resolves it.
// An alert of a rule NewCorrelator was not given is taken as grouped by
// nothing (about its service).
func (c *Correlator) Correlate(a *Alert) {
	var inc *incident
	switch a.Transition {
	case TransitionFiring:
		inc = c.co.open(member{rule: a.Rule, fingerprint: a.Fingerprint, severity: a.Severity,
			groupBy: c.groupBy[a.Rule], labels: a.Labels, entities: &a.Entities}, a.StartsAt.UnixNano())
		c.firing[a.Fingerprint] = inc
	default:
		inc = c.firing[a.Fingerprint]
	}
	a.IncidentID, a.IncidentSeverity = "", ""
	if inc != nil {
		a.IncidentID, a.IncidentSeverity = inc.id, inc.severity
	}
	if a.Transition == TransitionResolved {
		c.co.resolved(inc, a.EndsAt.UnixNano())
		delete(c.firing, a.Fingerprint)
	}
}
