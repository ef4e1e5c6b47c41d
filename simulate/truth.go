package simulate

import (
	"encoding/json"
	"io"
	"maps"
	"time"

	"github.com/vigil-sec/vigil/detect/backtest"
)

// Truth says what a scenario holds, for scoring detections (vigil
// backtest): each attack incident and each benign pattern with the alert
// labels that identify it and its time range, in seconds from T0. The
// format is detect/backtest's, which reads it.
type Truth = backtest.Truth

// Truth returns the scenario's truth.
func (sc *Scenario) Truth() Truth {
	t := Truth{T0: sc.opts.Start, Incidents: []backtest.Incident{}, Benign: []backtest.Benign{}}
	for _, it := range sc.items {
		// Milliseconds, rounded outwards: event times are truncated to them.
		start := float64(it.start.Milliseconds()) / 1000
		end := float64((it.end+time.Millisecond-1)/time.Millisecond) / 1000
		if it.attack {
			t.Incidents = append(t.Incidents, backtest.Incident{ID: it.id, Attack: it.name, Key: maps.Clone(it.keys[0]),
				Start: start, End: end, Params: maps.Clone(it.params)})
			continue
		}
		for _, k := range it.keys {
			t.Benign = append(t.Benign, backtest.Benign{Pattern: it.name, Key: maps.Clone(k), Start: start, End: end})
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
