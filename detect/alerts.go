package detect

import (
	"bytes"
	"crypto/sha256"
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
	key         []byte // the group's cache key
	labels      map[string]string
	fingerprint string
	startsAt    int64
	// falseSince is when the condition stopped holding; valid when isFalse.
	falseSince int64
	isFalse    bool
	// scanK is the last fine bucket whose final window was evaluated.
	scanK            int64
	lastSent         int64
	value, threshold float64
	sample           []string
}

var transitionIndex = map[Transition]int{TransitionFiring: 0, TransitionRepeat: 1, TransitionResolved: 2}

// holds records that rule i's condition holds for the group key at event
// time t: it fires a new alert or keeps the group's alert firing.
func (e *Engine) holds(i int, key []byte, res result, t int64, st *groupState) {
	c := e.rules[i].c
	if a := e.firing[string(key)]; a != nil {
		a.value, a.threshold = res.value, res.threshold
		a.scanK = max(a.scanK, floorDiv(t, c.g)-1)
		if c.kind == KindSequence { // an instant condition: it held at t
			a.isFalse, a.falseSince = true, max(a.falseSince, t)
		} else {
			a.isFalse = false
		}
		e.nextDue = min(e.nextDue, e.due(a))
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
		rule: i, key: bytes.Clone(key), labels: make(map[string]string, len(c.groupBy)),
		startsAt: t, scanK: floorDiv(t, c.g) - 1, lastSent: t,
		value: res.value, threshold: res.threshold,
	}
	for _, f := range c.groupBy {
		v := strings.Clone(f.label(e.ctx.ev))
		if e.opts.Label != nil {
			v = e.opts.Label(f.name, v)
		}
		a.labels[f.name] = v
	}
	if c.kind == KindSequence {
		a.isFalse, a.falseSince = true, t
	}
	a.fingerprint = Fingerprint(e.rules[i].Name, a.labels)
	for _, id := range st.sample {
		a.sample = append(a.sample, string(id))
	}
	e.firing[string(a.key)] = a
	e.order = append(e.order, a)
	e.counts.rules[i].firing++
	e.emit(a, TransitionFiring, 0)
	e.nextDue = min(e.nextDue, e.due(a))
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
	if a.isFalse {
		return a.falseSince + int64(c.resolveAfter)
	}
	return min((a.scanK+2)*c.g, a.lastSent+int64(c.repeat))
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
	}
}

// checkAlert brings a up to the watermark and reports the transition due, if any.
func (e *Engine) checkAlert(a *firingAlert) (pending, bool) {
	c := e.rules[a.rule].c
	if !a.isFalse {
		if kEnd := floorDiv(e.wm, c.g) - 1; kEnd > a.scanK {
			e.scan(a, c, kEnd)
		}
	}
	if a.isFalse && a.falseSince+int64(c.resolveAfter) <= e.wm {
		return pending{a, TransitionResolved, a.falseSince + int64(c.resolveAfter)}, true
	}
	if d := a.lastSent + int64(c.repeat); e.wm >= d && (!a.isFalse || a.falseSince >= d) {
		a.lastSent = d
		return pending{a, TransitionRepeat, d}, true
	}
	return pending{}, false
}

// scan evaluates the final windows ending with fine buckets scanK+1..kEnd and
// stops at the first where the condition does not hold.
func (e *Engine) scan(a *firingAlert, c *compiled, kEnd int64) {
	st, _ := e.load(a.key)
	kh, ok := st.newestIdx()
	limit := kh + c.nb
	if c.kind == KindSpike {
		limit += (c.nbb+1)*c.gb/c.g + 1
	}
	for k := a.scanK + 1; k <= kEnd; k++ {
		if !ok || k > limit {
			a.isFalse, a.falseSince, a.scanK = true, (k+1)*c.g, k
			return
		}
		res := c.evaluate(st, k)
		if !res.ok {
			a.isFalse, a.falseSince, a.scanK = true, (k+1)*c.g, k
			return
		}
		a.value, a.threshold = res.value, res.threshold
	}
	a.scanK = kEnd
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
	al := Alert{
		Rule: r.Name, Category: r.Category, Severity: r.Severity,
		State: StateFiring, Transition: TransitionFiring,
		Labels: maps.Clone(a.labels), Value: a.value, Threshold: a.threshold,
		Window: Duration(r.c.window), StartsAt: time.Unix(0, a.startsAt).UTC(),
		Fingerprint: a.fingerprint, Sample: slices.Clone(a.sample),
	}
	if al.Sample == nil {
		al.Sample = []string{}
	}
	if r.c.kind == KindRatio || (r.c.kind == KindSpike && r.c.of != nil) {
		al.Unit = UnitShare
	}
	data := TemplateData{
		Rule: r.Name, Category: r.Category, Severity: r.Severity, Labels: al.Labels,
		Value: a.value, Threshold: a.threshold, Window: r.c.window.String(),
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
