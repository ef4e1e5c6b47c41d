package detect

import (
	"bytes"
	"encoding/binary"
	"maps"
	"slices"
)

// The firing alerts and the incident correlator in a snapshot's state
// section (see snapshot_state.go). Incidents point at each other (merges)
// and alerts point at incidents: the section lists every incident once, in
// a table, and points into it by position.

// encodeIncidents writes the incident table and the correlator, and
// returns each incident's position in the table.
func (e *Engine) encodeIncidents(w *wbuf) map[*incident]int {
	co := e.incidents
	idx := make(map[*incident]int)
	var table []*incident
	add := func(inc *incident) {
		for ; inc != nil; inc = inc.into {
			if _, ok := idx[inc]; ok {
				return
			}
			idx[inc] = len(table)
			table = append(table, inc)
		}
	}
	keys := slices.Sorted(maps.Keys(co.byKey))
	for _, inc := range co.active {
		add(inc)
	}
	for _, a := range e.order {
		add(a.incident)
	}
	for _, k := range keys {
		add(co.byKey[k])
	}
	w.u(uint64(len(table)))
	for _, inc := range table {
		w.str(inc.id)
		w.i(inc.opened)
		w.i(inc.last)
		w.i(int64(inc.firing))
		w.strs(inc.rules)
		w.str(inc.severity)
		w.strs(inc.keys)
		w.u(ref(idx, inc.into))
	}
	w.u(uint64(co.opens))
	w.u(uint64(len(co.active)))
	for _, inc := range co.active {
		w.u(ref(idx, inc))
	}
	w.u(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.u(ref(idx, co.byKey[k]))
	}
	return idx
}

// ref is an optional reference to a table entry: 0 for none, else its
// position plus one.
func ref(idx map[*incident]int, inc *incident) uint64 {
	if inc == nil {
		return 0
	}
	return uint64(idx[inc]) + 1
}

func derefIncident(d *decoder, table []*incident) *incident {
	if i := d.index(len(table) + 1); i > 0 {
		return table[i-1]
	}
	return nil
}

// decodeIncidents decodes the incident table into a new correlator in st.
func (e *Engine) decodeIncidents(d *decoder, st *restored) ([]*incident, bool) {
	co := newCorrelator(e.opts.Incidents)
	var table []*incident
	var into []int
	for range d.count(6) {
		inc := &incident{id: d.str(), opened: d.varint(), last: d.varint(), firing: int(d.varint()),
			rules: d.strs(), severity: d.str(), keys: d.strs()}
		table = append(table, inc)
		into = append(into, int(d.uvarint()))
	}
	for i, j := range into {
		if j > len(table) || j == i+1 {
			return nil, false
		}
		if j > 0 {
			table[i].into = table[j-1]
		}
	}
	if d.err || !acyclic(table) {
		return nil, false
	}
	co.opens = int(d.uvarint())
	for range d.count(1) {
		if inc := derefIncident(d, table); inc != nil {
			co.active = append(co.active, inc)
		}
	}
	for range d.count(2) {
		k := d.str()
		if inc := derefIncident(d, table); inc != nil {
			co.byKey[k] = inc
		}
	}
	st.incidents = co
	return table, !d.err
}

// acyclic reports whether following merges from any incident ends.
func acyclic(table []*incident) bool {
	state := make(map[*incident]int8, len(table)) // 1: on the current path, 2: ends
	for _, inc := range table {
		var path []*incident
		for x := inc; x != nil && state[x] != 2; x = x.into {
			if state[x] == 1 {
				return false
			}
			state[x] = 1
			path = append(path, x)
		}
		for _, x := range path {
			state[x] = 2
		}
	}
	return true
}

func encodeAlert(w *wbuf, a *firingAlert, incIdx map[*incident]int) {
	w.u(uint64(a.rule))
	w.blob(a.key)
	labels := slices.Sorted(maps.Keys(a.labels))
	w.u(uint64(len(labels)))
	for _, k := range labels {
		w.str(k)
		w.str(a.labels[k])
	}
	w.str(a.fingerprint)
	w.str(a.severity)
	w.i(a.startsAt)
	w.u(uint64(len(a.scans)))
	for _, s := range a.scans {
		w.i(s.scanK)
		w.i(s.falseSince)
		w.flag(s.isFalse)
	}
	w.i(a.lastSent)
	w.f(a.value)
	w.f(a.threshold)
	w.u(uint64(a.track))
	for _, v := range a.vals {
		w.f(v)
	}
	w.strs(a.sample)
	en := a.entities
	w.strs([]string{en.Service, en.Endpoint, en.SourceIP, en.SourcePrefix, en.User, en.ClientID})
	w.u(ref(incIdx, a.incident))
}

// decodeAlert decodes a firing alert and checks that it fits the rules.
func (e *Engine) decodeAlert(d *decoder, table []*incident) (*firingAlert, bool) {
	a := &firingAlert{rule: d.index(len(e.rules)), key: bytes.Clone(d.blob())}
	if d.err {
		return nil, false
	}
	c := e.rules[a.rule].c
	n := d.count(2)
	a.labels = make(map[string]string, n)
	for range n {
		k := d.str()
		a.labels[k] = d.str()
	}
	a.fingerprint, a.severity, a.startsAt = d.str(), d.str(), d.varint()
	for range d.count(3) {
		a.scans = append(a.scans, trackScan{scanK: d.varint(), falseSince: d.varint(), isFalse: d.flag()})
	}
	a.lastSent, a.value, a.threshold = d.varint(), d.f(), d.f()
	a.track = d.index(len(c.tracks))
	for i := range a.vals {
		a.vals[i] = d.f()
	}
	a.sample = d.strs()
	en := d.strs()
	a.incident = derefIncident(d, table)
	if d.err || len(en) != 6 {
		return nil, false
	}
	a.entities = Entities{Service: en[0], Endpoint: en[1], SourceIP: en[2], SourcePrefix: en[3], User: en[4], ClientID: en[5]}
	scans := len(c.tracks)
	if c.kind == KindSequence {
		scans = 1
	}
	// The engine finds an alert's state by its key, and its conditions
	// by its scans.
	ok := len(a.key) >= 3 && int(binary.BigEndian.Uint16(a.key)) == a.rule && a.key[2] == alertSlot && len(a.scans) == scans
	return a, ok
}
