package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Incidents. One attack sets off several rules: a brute force from one
// address fires the per-address rule, the per-user rule and, if it works,
// the takeover rule. The engine correlates alerts that share an entity into
// one incident, so that receivers can thread them and page once:
//
//   - an alert's entities are its address, network (source_prefix, and the
//     network of its address) and user labels, plus those of the event that
//     made it fire (a per-address brute force names the user it targets,
//     and so meets the per-user alert on that user); the client is an
//     entity only of rules grouped by client_id, since a public client's id
//     is shared by its users and attackers alike;
//   - an alert about a whole service (no such label) has the service as
//     its entity, so an error spike, an outage and a latency rise of one
//     service are one incident; an alert about one endpoint of a service
//     (grouped by endpoint, such as a botnet on the login route) has that
//     endpoint, and is not part of the service's availability incident;
//   - an alert joins the incident of any of its entities that still has a
//     firing alert or saw one fire or resolve within the incident window
//     (default 30 minutes); when it meets several, they merge into the
//     oldest;
//   - the incident's severity is the highest of its alerts', one level
//     higher once three different rules have joined.
//
// Incident ids are derived from the first alert's fingerprint and start, so
// a replay of the same events gives the same ids. Correlation runs on event
// time under the engine's lock, as the rest of the engine; a Correlator
// (correlate.go) runs the same code over alerts outside an engine.

// IncidentOptions configure correlation.
type IncidentOptions struct {
	// Window is how long after its last alert fired or resolved an
	// incident takes new alerts (default 30m).
	Window time.Duration `yaml:"window"`
	// Disabled turns correlation off: alerts carry no incident.
	Disabled bool `yaml:"disabled"`
}

const (
	defaultIncidentWindow = 30 * time.Minute
	maxIncidentKeys       = 64
	escalateAfterRules    = 3
	sweepEvery            = 256
	// lookupOnly marks a key an alert joins by but does not register;
	// registerOnly one it registers but does not join by.
	lookupOnly   = "?"
	registerOnly = "!"
)

type incident struct {
	id       string
	opened   int64
	last     int64 // an alert fired or resolved
	firing   int
	rules    []string // names
	severity string
	keys     []string
	into     *incident // merged into another
}

type correlator struct {
	opts   IncidentOptions
	byKey  map[string]*incident
	opens  int
	active []*incident
}

func newCorrelator(o IncidentOptions) *correlator {
	if o.Window <= 0 {
		o.Window = defaultIncidentWindow
	}
	return &correlator{opts: o, byKey: map[string]*incident{}}
}

// root follows merges.
func (inc *incident) root() *incident {
	for inc.into != nil {
		inc = inc.into
	}
	return inc
}

func (inc *incident) open(t, window int64) bool {
	return inc.firing > 0 || t-inc.last <= window
}

// member is what correlation needs of a new alert.
type member struct {
	rule, fingerprint, severity string
	groupBy                     []string
	labels                      map[string]string
	entities                    *Entities
}

// open puts a new alert, fired at t, in an incident and returns it (nil
// when correlation is off).
func (co *correlator) open(m member, t int64) *incident {
	if co == nil || co.opts.Disabled {
		return nil
	}
	keys := incidentKeys(m.groupBy, m.labels, m.entities)
	var inc *incident
	for _, k := range keys {
		if strings.HasPrefix(k, registerOnly) {
			continue
		}
		found := co.byKey[strings.TrimPrefix(k, lookupOnly)]
		if found == nil {
			continue
		}
		found = found.root()
		if !found.open(t, int64(co.opts.Window)) {
			continue
		}
		switch {
		case inc == nil:
			inc = found
		case found != inc:
			inc = co.merge(inc, found)
		}
	}
	if inc == nil {
		sum := sha256.Sum256([]byte(m.fingerprint + "\x00" + strconv.FormatInt(t, 10)))
		inc = &incident{id: hex.EncodeToString(sum[:8]), opened: t}
		co.active = append(co.active, inc)
	}
	inc.firing++
	inc.last = max(inc.last, t)
	if !slices.Contains(inc.rules, m.rule) {
		inc.rules = append(inc.rules, m.rule)
	}
	for _, k := range keys {
		if len(inc.keys) >= maxIncidentKeys {
			break
		}
		if strings.HasPrefix(k, lookupOnly) {
			continue
		}
		k = strings.TrimPrefix(k, registerOnly)
		if co.byKey[k] == nil || co.byKey[k].root() != inc {
			co.byKey[k] = inc
			inc.keys = append(inc.keys, k)
		}
	}
	inc.severity = incidentSeverity(inc, m.severity)
	if co.opens++; co.opens%sweepEvery == 0 {
		co.sweep(t)
	}
	return inc
}

// merge folds the younger of x and y into the older and returns the older.
func (co *correlator) merge(x, y *incident) *incident {
	if y.opened < x.opened || (y.opened == x.opened && y.id < x.id) {
		x, y = y, x
	}
	y.into = x
	x.firing += y.firing
	x.last = max(x.last, y.last)
	for _, r := range y.rules {
		if !slices.Contains(x.rules, r) {
			x.rules = append(x.rules, r)
		}
	}
	x.keys = append(x.keys, y.keys...)
	return x
}

// resolved records that an alert of incident in resolved at t.
func (co *correlator) resolved(in *incident, t int64) {
	if co == nil || in == nil {
		return
	}
	inc := in.root()
	inc.firing--
	inc.last = max(inc.last, t)
}

// sweep forgets incidents closed for longer than the window.
func (co *correlator) sweep(t int64) {
	keep := co.active[:0]
	for _, inc := range co.active {
		if inc.into == nil && inc.open(t, int64(co.opts.Window)) {
			keep = append(keep, inc)
			continue
		}
		if inc.into != nil && inc.root().open(t, int64(co.opts.Window)) {
			keep = append(keep, inc)
			continue
		}
		for _, k := range inc.keys {
			if co.byKey[k] == inc || (co.byKey[k] != nil && co.byKey[k].root() == inc.root()) {
				delete(co.byKey, k)
			}
		}
	}
	clear(co.active[len(keep):])
	co.active = keep
}

// incidentSeverity is the highest severity among inc's alerts so far (the
// new alert's, sev, included), one level more once enough rules joined.
func incidentSeverity(inc *incident, sev string) string {
	best := slices.Index(Severities, inc.severity)
	if i := slices.Index(Severities, sev); i > best {
		best = i
	}
	if best < 0 {
		return sev
	}
	if len(inc.rules) >= escalateAfterRules {
		return raiseSeverity(Severities[best], 1)
	}
	return Severities[best]
}

// incidentKeys are the entities of a new alert of a rule grouped by
// groupBy, with labels, fired by an event with entities en (raw values,
// before any label rewriting).
func incidentKeys(groupBy []string, labels map[string]string, en *Entities) []string {
	var keys []string
	entity, byClient, byEndpoint := false, false, false
	for _, f := range groupBy {
		switch f {
		case "source_ip", "source_prefix", "user":
			entity = true
		case "client_id":
			entity, byClient = true, true
		case "endpoint":
			byEndpoint = true
		}
	}
	if !entity {
		// An alert about one endpoint (a botnet on the login route) is not
		// the service's availability incident (an outage, a latency rise).
		if byEndpoint {
			return []string{"endpoint:" + en.Service + " " + en.Endpoint}
		}
		return []string{"service:" + en.Service}
	}
	if en.SourceIP != "" {
		// An address meets the alerts about its network, whichever fires
		// first, but two addresses of one network meet only through such
		// an alert: an address registers as a member of its network and
		// looks for the network; a network registers as itself and looks
		// for its members.
		p := en.SourcePrefix
		if _, byNet := labels["source_prefix"]; byNet {
			keys = append(keys, "net:"+p, lookupOnly+"member:"+p)
		} else {
			keys = append(keys, "ip:"+en.SourceIP, registerOnly+"member:"+p, lookupOnly+"net:"+p)
		}
	}
	if en.User != "" {
		keys = append(keys, "user:"+en.User)
	}
	// A client is an entity only of alerts about it: one client id is
	// shared by every user of a public client (a web app, a mobile build),
	// attackers included, so taking it from the firing request would chain
	// unrelated attacks into one incident.
	if byClient && en.ClientID != "" {
		keys = append(keys, "client:"+en.ClientID)
	}
	return keys
}
