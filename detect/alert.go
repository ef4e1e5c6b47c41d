package detect

import (
	"encoding/json"
	"time"
)

// State is an alert's state in a transition.
type State string

// Alert states.
const (
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Transition names why an alert was emitted: it started firing, it is still
// firing after the rule's repeat_interval, or it resolved.
type Transition string

// Alert transitions.
const (
	TransitionFiring   Transition = "firing"
	TransitionRepeat   Transition = "repeat"
	TransitionResolved Transition = "resolved"
)

// Alert is one alert transition as the engine emits it. An alert is
// identified by its rule and labels (Fingerprint). StartsAt and EndsAt are
// event time; EndsAt is zero while the alert fires.
type Alert struct {
	Rule       string            `json:"rule"`
	Category   string            `json:"category"`
	Severity   string            `json:"severity"`
	State      State             `json:"state"`
	Transition Transition        `json:"transition"`
	Labels     map[string]string `json:"labels"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold"`
	// Unit says how to read Value and Threshold: UnitShare for a share of
	// events between 0 and 1 (show it as a percentage), UnitMS for
	// milliseconds, empty for a count.
	Unit        string    `json:"unit,omitempty"`
	Window      Duration  `json:"window"`
	StartsAt    time.Time `json:"starts_at"`
	EndsAt      time.Time `json:"ends_at,omitzero"`
	Fingerprint string    `json:"fingerprint"`
	Summary     string    `json:"summary"`
	Description string    `json:"description"`
	Sample      []string  `json:"sample"`
	// Condition names the condition of the rule that held last (empty
	// when it has no name); Values holds what each of its checks measured,
	// by check name (count, distinct, share, events, rate, percentile).
	Condition string             `json:"condition,omitempty"`
	Values    map[string]float64 `json:"values,omitempty"`
	// AppSensor and Attack are the rule's OWASP AppSensor detection points
	// and MITRE ATT&CK techniques.
	AppSensor []string `json:"appsensor,omitempty"`
	Attack    []string `json:"attack,omitempty"`
	// IncidentID groups the alerts that are about the same attack: alerts
	// sharing an address, network, user or client (or, for alerts about a
	// whole service, the service) within the incident window. Receivers
	// thread an incident's alerts. IncidentSeverity is the incident's
	// severity when the transition was emitted: the highest of its alerts',
	// raised one level once three rules have joined.
	IncidentID       string `json:"incident_id,omitempty"`
	IncidentSeverity string `json:"incident_severity,omitempty"`
	// Entities are the raw values of the event that made the alert fire,
	// for a Correlator outside the engine; they stay in the process.
	Entities Entities `json:"-"`
}

// Units of Alert.Value.
const (
	UnitShare = "share"
	UnitMS    = "ms"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("5m0s") in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
