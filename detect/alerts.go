package detect

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"
)

// firingAlert is the engine's record of one firing alert. Times are event
// time in Unix nanoseconds.
type firingAlert struct {
	rule        int
	key         []byte // the group's alert key
	labels      map[string]string
	fingerprint string
	severity    string // the rule's, raised for listed source addresses
	startsAt    int64
	// scans follow each condition (track) of the rule; the alert's
	// condition is false once all of theirs is. A sequence has one scan,
	// false from the moment it held (an instant condition).
	scans    []trackScan
	lastSent int64
	// What the condition last seen holding measured.
	value, threshold float64
	track            int
	vals             [maxChecks]float64
	sample           []string
	entities         Entities // of the event that fired it
	incident         *incident
}

// trackScan is where resolution checks stand for one condition.
type trackScan struct {
	// scanK is the last fine bucket whose final window was evaluated.
	scanK int64
	// falseSince is when the condition stopped holding; valid when isFalse.
	falseSince int64
	isFalse    bool
}

var transitionIndex = map[Transition]int{TransitionFiring: 0, TransitionRepeat: 1, TransitionResolved: 2}

// isFalse reports whether every condition of a is false, and since when.
func (a *firingAlert) isFalse() (int64, bool) {
	since := int64(math.MinInt64)
	for _, s := range a.scans {
		if !s.isFalse {
			return 0, false
		}
		since = max(since, s.falseSince)
	}
	return since, true
}

// holds records that rule i's condition res.track holds for the group key
// at event time t: it fires a new alert or keeps the group's alert firing.
// sample is the group's latest request ids.
func (e *Engine) holds(i int, key []byte, res result, t int64, sample [][]byte) {
	c := e.rules[i].c
	if a := e.firing[string(key)]; a != nil {
		a.value, a.threshold, a.vals, a.track = res.value, res.threshold, res.vals, res.track
		s := &a.scans[min(res.track, len(a.scans)-1)]
		if c.kind == KindSequence { // an instant condition: it held at t
			s.isFalse, s.falseSince = true, max(s.falseSince, t)
		} else {
			s.scanK = max(s.scanK, floorDiv(t, c.tracks[res.track].g)-1)
			s.isFalse = false
		}
		e.nextDue = min(e.nextDue, e.due(a))
		return
	}
	if e.firingFor(c.inhibitors) {
		e.counts.rules[i].inhibited++
		return
	}
	if len(e.firing) >= e.opts.MaxFiring {
		if e.counts.dropped == 0 {
			e.log.Warn("too many firing alerts; new alerts are dropped", "max_firing", e.opts.MaxFiring)
		}
		e.counts.dropped++
		return
	}
	a := &firingAlert{
		rule: i, key: bytes.Clone(key), labels: make(map[string]string, len(c.groupBy)+1),
		severity: e.rules[i].Severity, startsAt: t, lastSent: t,
		value: res.value, threshold: res.threshold, vals: res.vals, track: res.track,
	}
	for _, f := range c.groupBy {
		a.labels[f.name] = e.labelValue(f.name, strings.Clone(f.label(&e.ctx)))
	}
	e.enrich(c, a)
	a.scans = e.newScans(c, res.track, t)
	a.fingerprint = Fingerprint(e.rules[i].Name, a.labels)
	for _, f := range c.eventLabels {
		if v := f.label(&e.ctx); v != "" {
			a.labels[f.name] = e.labelValue(f.name, strings.Clone(v))
		}
	}
	for _, id := range sample {
		a.sample = append(a.sample, string(id))
	}
	e.firing[string(a.key)] = a
	e.order = append(e.order, a)
	e.counts.rules[i].firing++
	a.entities = e.entities()
	a.incident = e.incidents.open(member{rule: e.rules[i].Name, fingerprint: a.fingerprint, severity: a.severity,
		groupBy: e.rules[i].GroupBy, labels: a.labels, entities: &a.entities}, t)
	e.emit(a, TransitionFiring, 0)
	e.nextDue = min(e.nextDue, e.due(a))
}

// newScans starts the resolution checks of a new alert: the condition that
// fired holds at t, the others are taken as false from t.
func (e *Engine) newScans(c *compiled, fired int, t int64) []trackScan {
	if c.kind == KindSequence {
		return []trackScan{{isFalse: true, falseSince: t}}
	}
	scans := make([]trackScan, len(c.tracks))
	for j, tr := range c.tracks {
		scans[j] = trackScan{scanK: floorDiv(t, tr.g) - 1, isFalse: j != fired, falseSince: t}
	}
	return scans
}

// firingFor reports whether one of the rules fires for the current event's
// group of that rule (inhibited_by, unless_firing).
func (e *Engine) firingFor(rules []int) bool {
	if len(e.firing) == 0 {
		return false
	}
	for _, j := range rules {
		b := binary.BigEndian.AppendUint16(e.inhibitKey[:0], uint16(j))
		b = append(b, alertSlot)
		ok := true
		for _, f := range e.rules[j].c.groupBy {
			if b, ok = f.key(b, &e.ctx); !ok {
				break
			}
		}
		e.inhibitKey = b
		if ok && e.firing[string(b)] != nil {
			return true
		}
	}
	return false
}

func (e *Engine) labelValue(name, v string) string {
	if e.opts.Label != nil {
		return e.opts.Label(name, v)
	}
	return v
}

// enrich adds label source_list to an alert about an address in an
// operator CIDR list, and raises its severity as the list says.
func (e *Engine) enrich(c *compiled, a *firingAlert) {
	if _, grouped := a.labels["source_list"]; grouped {
		return
	}
	_, byIP := a.labels["source_ip"]
	_, byPrefix := a.labels["source_prefix"]
	if (!byIP && !byPrefix) || !e.ctx.ev.SourceIP.IsValid() {
		return
	}
	name, raise := c.lists.sourceList(e.ctx.ev.SourceIP)
	if name == "" {
		return
	}
	a.labels["source_list"] = name
	a.severity = raiseSeverity(a.severity, raise)
}

func raiseSeverity(s string, by int) string {
	i := slices.Index(Severities, s)
	if i < 0 {
		return s
	}
	return Severities[min(i+by, len(Severities)-1)]
}

// Fingerprint identifies an alert across runs: the first 8 bytes of SHA-256
// over the rule name and the labels sorted by name, in hex.
func Fingerprint(rule string, labels map[string]string) string {
	h := sha256.New()
	h.Write([]byte(rule))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// due is the watermark at which a needs its next check.
func (e *Engine) due(a *firingAlert) int64 {
	c := e.rules[a.rule].c
	if since, ok := a.isFalse(); ok {
		return since + int64(c.resolveAfter)
	}
	d := a.lastSent + int64(c.repeat)
	for j, s := range a.scans {
		if !s.isFalse {
			d = min(d, (s.scanK+2)*c.tracks[j].g)
		}
	}
	return d
}

type pending struct {
	a  *firingAlert
	tr Transition
	at int64
}

// check evaluates every firing alert at the current watermark and emits the
// repeats and resolutions that are due, ordered by event time, then rule
// order, then fingerprint.
func (e *Engine) check() {
	e.nextDue = math.MaxInt64
	var out []pending
	keep := e.order[:0]
	for _, a := range e.order {
		p, ok := e.checkAlert(a)
		if ok {
			out = append(out, p)
		}
		if ok && p.tr == TransitionResolved {
			continue
		}
		keep = append(keep, a)
		e.nextDue = min(e.nextDue, e.due(a))
	}
	clear(e.order[len(keep):])
	e.order = keep
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.at != y.at {
			return x.at < y.at
		}
		if x.a.rule != y.a.rule {
			return x.a.rule < y.a.rule
		}
		return x.a.fingerprint < y.a.fingerprint
	})
	for _, p := range out {
		if p.tr == TransitionResolved {
			delete(e.firing, string(p.a.key))
			e.counts.rules[p.a.rule].firing--
		}
		e.emit(p.a, p.tr, p.at)
		if p.tr == TransitionResolved {
			e.incidents.resolved(p.a.incident, p.at)
		}
	}
}

// checkAlert brings a up to the watermark and reports the transition due, if any.
func (e *Engine) checkAlert(a *firingAlert) (pending, bool) {
	c := e.rules[a.rule].c
	for j := range a.scans {
		s := &a.scans[j]
		if s.isFalse || c.kind == KindSequence {
			continue
		}
		if kEnd := floorDiv(e.wm, c.tracks[j].g) - 1; kEnd > s.scanK {
			e.scan(a, j, kEnd)
		}
	}
	since, isFalse := a.isFalse()
	if isFalse && since+int64(c.resolveAfter) <= e.wm {
		return pending{a, TransitionResolved, since + int64(c.resolveAfter)}, true
	}
	if d := a.lastSent + int64(c.repeat); e.wm >= d && (!isFalse || since >= d) {
		a.lastSent = d
		return pending{a, TransitionRepeat, d}, true
	}
	return pending{}, false
}

// scan evaluates condition j's final windows ending with fine buckets
// scanK+1..kEnd and stops at the first where it does not hold.
func (e *Engine) scan(a *firingAlert, j int, kEnd int64) {
	tr := e.rules[a.rule].c.tracks[j]
	s := &a.scans[j]
	rs, _ := e.load(a.rule, e.slotOf(a.key, stateSlot))
	st := &rs.tracks[j]
	kh, ok := st.newestIdx()
	limit := kh + tr.nb
	for k := s.scanK + 1; k <= kEnd; k++ {
		if !ok || k > limit {
			s.isFalse, s.falseSince, s.scanK = true, (k+1)*tr.g, k
			return
		}
		res := tr.evaluate(st, k, e.sk, &e.scratch)
		if !res.ok {
			s.isFalse, s.falseSince, s.scanK = true, (k+1)*tr.g, k
			return
		}
		a.value, a.threshold, a.vals, a.track = res.value, res.threshold, res.vals, j
	}
	s.scanK = kEnd
}

// emit sends one transition to Emit and counts it. endsAt is used for
// resolutions.
func (e *Engine) emit(a *firingAlert, tr Transition, endsAt int64) {
	if e.muted {
		return
	}
	e.counts.rules[a.rule].alerts[transitionIndex[tr]]++
	if e.opts.Emit == nil {
		return
	}
	al := e.alertOf(a)
	al.Transition = tr
	if tr == TransitionResolved {
		al.State = StateResolved
		al.EndsAt = time.Unix(0, endsAt).UTC()
	}
	e.opts.Emit(al)
}

// alertOf builds the firing Alert for a, with rendered templates.
func (e *Engine) alertOf(a *firingAlert) Alert {
	r := e.rules[a.rule]
	tr := r.c.tracks[min(a.track, len(r.c.tracks)-1)]
	al := Alert{
		Rule: r.Name, Category: r.Category, Severity: a.severity,
		State: StateFiring, Transition: TransitionFiring,
		Labels: maps.Clone(a.labels), Value: a.value, Threshold: a.threshold,
		Unit: unitOf(tr.checks[0].agg), Condition: tr.name,
		Window: Duration(tr.window), StartsAt: time.Unix(0, a.startsAt).UTC(),
		Fingerprint: a.fingerprint, Sample: slices.Clone(a.sample),
		Values:    make(map[string]float64, len(tr.checks)),
		AppSensor: slices.Clone(r.AppSensor), Attack: slices.Clone(r.Attack),
		Entities: a.entities,
	}
	for i, ch := range tr.checks {
		al.Values[ch.name] = a.vals[i]
	}
	if al.Sample == nil {
		al.Sample = []string{}
	}
	if inc := a.incident; inc != nil {
		al.IncidentID, al.IncidentSeverity = inc.id, inc.severity
	}
	data := TemplateData{
		Rule: r.Name, Category: r.Category, Severity: al.Severity, Labels: al.Labels,
		Value: a.value, Threshold: a.threshold, Window: tr.window.String(),
		Condition: tr.name, Values: al.Values,
	}
	al.Summary = e.render(r, r.c.summary, data)
	al.Description = e.render(r, r.c.description, data)
	return al
}

const maxRendered = 2048

func (e *Engine) render(r *Rule, t *template.Template, data TemplateData) string {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		e.log.Warn("alert template failed", "rule", r.Name, "template", t.Name(), "err", err)
		return r.Name
	}
	s := b.String()
	if len(s) > maxRendered {
		s = strings.ToValidUTF8(s[:maxRendered], "") + "…"
	}
	return s
}

// Firing returns a snapshot of the firing alerts, in the order they fired.
func (e *Engine) Firing() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Alert, 0, len(e.order))
	for _, a := range e.order {
		out = append(out, e.alertOf(a))
	}
	return out
}
