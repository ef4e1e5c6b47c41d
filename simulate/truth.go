package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"time"
)

// Truth says what a scenario holds, for scoring detections (vigil
// backtest): each attack incident and each benign pattern with the alert
// labels that identify it and its time range, in seconds from T0.
type Truth struct {
	T0        time.Time       `json:"t0"`
	Incidents []TruthIncident `json:"incidents"`
	Benign    []TruthBenign   `json:"benign"`
}

// TruthIncident is one attack.
type TruthIncident struct {
	ID     string            `json:"id"`
	Attack string            `json:"attack"`
	Key    map[string]string `json:"key"`
	Start  float64           `json:"start"`
	End    float64           `json:"end"`
	Params map[string]any    `json:"params"`
}

// TruthBenign is one key of a benign pattern: an alert with these labels
// in this time range is a false alert. A pattern may have several keys
// (a carrier NAT's prefix and each of its addresses).
type TruthBenign struct {
	Pattern string            `json:"pattern"`
	Key     map[string]string `json:"key"`
	Start   float64           `json:"start"`
	End     float64           `json:"end"`
}

// Truth returns the scenario's truth.
func (sc *Scenario) Truth() Truth {
	t := Truth{T0: sc.opts.Start, Incidents: []TruthIncident{}, Benign: []TruthBenign{}}
	for _, it := range sc.items {
		// Milliseconds, rounded outwards: event times are truncated to them.
		start := float64(it.start.Milliseconds()) / 1000
		end := float64((it.end+time.Millisecond-1)/time.Millisecond) / 1000
		if it.attack {
			t.Incidents = append(t.Incidents, TruthIncident{ID: it.id, Attack: it.name, Key: maps.Clone(it.keys[0]),
				Start: start, End: end, Params: maps.Clone(it.params)})
			continue
		}
		for _, k := range it.keys {
			t.Benign = append(t.Benign, TruthBenign{Pattern: it.name, Key: maps.Clone(k), Start: start, End: end})
		}
	}
	return t
}

// WriteTruth writes t as indented JSON.
func WriteTruth(w io.Writer, t Truth) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(t)
}

// ReadTruth reads a truth file, rejecting unknown fields and incidents
// without an id, a key or a valid time range.
func ReadTruth(r io.Reader) (Truth, error) {
	var t Truth
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Truth{}, fmt.Errorf("read truth: %w", err)
	}
	for i, in := range t.Incidents {
		if in.ID == "" || len(in.Key) == 0 || in.End < in.Start || in.Start < 0 {
			return Truth{}, fmt.Errorf("read truth: incident %d (%q) needs an id, a key and 0 <= start <= end", i, in.ID)
		}
	}
	for i, b := range t.Benign {
		if len(b.Key) == 0 || b.End < b.Start {
			return Truth{}, fmt.Errorf("read truth: benign entry %d (%q) needs a key and start <= end", i, b.Pattern)
		}
	}
	return t, nil
}

// Item describes the attack or benign pattern of a tag that Stream.Next
// returns: its name and whether it is an attack ("" for background).
func (sc *Scenario) Item(tag int) (name string, attack bool) {
	if tag < 0 || tag >= len(sc.items) {
		return "", false
	}
	return sc.items[tag].name, sc.items[tag].attack
}

// Items is the number of attacks and benign patterns in the scenario.
func (sc *Scenario) Items() int { return len(sc.items) }
