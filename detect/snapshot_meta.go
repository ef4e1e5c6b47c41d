package detect

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A snapshot's meta section says what the state belongs to: the options
// that shape it and a digest of each rule and of the operator lists.
// Restore compares it with the engine's before decoding anything else, and
// names every difference.

type snapshotMeta struct {
	stateMemory, prefixV4, prefixV6, maxFiring uint64
	lateness, incidentWindow                   int64
	incidentsOff                               bool
	lists                                      []byte
	rules                                      []ruleDigest
}

type ruleDigest struct {
	name string
	sum  []byte
}

// metaOf reads only what New fixed, so it needs no lock.
func (e *Engine) metaOf() snapshotMeta {
	window := e.opts.Incidents.Window
	if window <= 0 {
		window = defaultIncidentWindow // as newCorrelator takes it
	}
	m := snapshotMeta{
		stateMemory: uint64(e.opts.StateMemory), prefixV4: uint64(e.opts.PrefixV4), prefixV6: uint64(e.opts.PrefixV6),
		maxFiring: uint64(e.opts.MaxFiring), lateness: int64(e.opts.Lateness),
		incidentWindow: int64(window), incidentsOff: e.opts.Incidents.Disabled,
		lists: e.cfg.lists.digest(),
	}
	for _, r := range e.rules {
		m.rules = append(m.rules, ruleDigest{name: r.Name, sum: r.digest()})
	}
	return m
}

// digest is a SHA-256 of the rule as JSON, without where it was loaded from.
func (r *Rule) digest() []byte {
	c := *r
	c.File, c.Line = "", 0
	b, err := json.Marshal(&c)
	if err != nil {
		b = []byte(r.Name) // a compiled rule always marshals; this only keeps the name
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// digest is a SHA-256 of the lists' entries.
func (l *listSet) digest() []byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(l.values)) {
		fmt.Fprintf(h, "values %q\n", name)
		for _, v := range slices.Sorted(maps.Keys(l.values[name])) {
			fmt.Fprintf(h, "%q\n", v)
		}
	}
	for _, c := range l.cidrs {
		fmt.Fprintf(h, "cidrs %q %d %v\n", c.name, c.raise, c.prefixes)
	}
	return h.Sum(nil)
}

func (e *Engine) snapshotMeta() []byte {
	m := e.metaOf()
	var w wbuf
	for _, v := range []uint64{m.stateMemory, m.prefixV4, m.prefixV6, m.maxFiring} {
		w.u(v)
	}
	w.i(m.lateness)
	w.i(m.incidentWindow)
	w.flag(m.incidentsOff)
	w.blob(m.lists)
	w.u(uint64(len(m.rules)))
	for _, r := range m.rules {
		w.str(r.name)
		w.blob(r.sum)
	}
	return w
}

func decodeMeta(b []byte) (snapshotMeta, bool) {
	var m snapshotMeta
	d := decoder{b: b}
	m.stateMemory, m.prefixV4, m.prefixV6, m.maxFiring = d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()
	m.lateness, m.incidentWindow = d.varint(), d.varint()
	m.incidentsOff = d.flag()
	m.lists = d.blob()
	for range d.count(1) {
		m.rules = append(m.rules, ruleDigest{name: d.str(), sum: d.blob()})
	}
	return m, !d.err && len(d.b) == 0
}

// checkMeta reports how the snapshot's meta section differs from e's.
func (e *Engine) checkMeta(b []byte) error {
	got, ok := decodeMeta(b)
	if !ok {
		return snapshotCorrupt("its options section does not decode")
	}
	want := e.metaOf()
	var diffs []string
	differ := func(what string, snap, here any) {
		if snap != here {
			diffs = append(diffs, fmt.Sprintf("%s is %v in the snapshot, %v here", what, snap, here))
		}
	}
	differ("detect.state_memory", ByteSize(got.stateMemory), ByteSize(want.stateMemory))
	differ("detect.lateness", time.Duration(got.lateness), time.Duration(want.lateness))
	differ("detect.prefix_v4", got.prefixV4, want.prefixV4)
	differ("detect.prefix_v6", got.prefixV6, want.prefixV6)
	differ("detect.incidents.window", time.Duration(got.incidentWindow), time.Duration(want.incidentWindow))
	differ("detect.incidents.disabled", got.incidentsOff, want.incidentsOff)
	differ("the firing alert limit", got.maxFiring, want.maxFiring)
	if string(got.lists) != string(want.lists) {
		diffs = append(diffs, "the operator lists (detect.lists and the rule files' lists) differ")
	}
	diffs = append(diffs, ruleDiffs(got.rules, want.rules)...)
	if len(diffs) > 0 {
		return snapshotMismatch(strings.Join(diffs, "; "))
	}
	return nil
}

// ruleDiffs names the rules that differ between a snapshot and the engine.
func ruleDiffs(snap, here []ruleDigest) []string {
	var diffs []string
	sums := make(map[string]string, len(snap))
	for _, r := range snap {
		sums[r.name] = string(r.sum)
	}
	loaded := make(map[string]bool, len(here))
	for _, r := range here {
		loaded[r.name] = true
		switch s, ok := sums[r.name]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("rule %q is not in the snapshot", r.name))
		case s != string(r.sum):
			diffs = append(diffs, fmt.Sprintf("rule %q has changed", r.name))
		}
	}
	for _, r := range snap {
		if !loaded[r.name] {
			diffs = append(diffs, fmt.Sprintf("rule %q of the snapshot is not loaded", r.name))
		}
	}
	if len(diffs) == 0 && !slices.EqualFunc(snap, here, func(x, y ruleDigest) bool { return x.name == y.name }) {
		diffs = append(diffs, "the rules are loaded in another order")
	}
	return diffs
}
