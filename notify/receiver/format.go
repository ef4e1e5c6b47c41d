package receiver

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// ValueLine writes an alert's value against its threshold and window, in
// the alert's unit: "81.2% (threshold 50.0% over 2m0s)".
func ValueLine(a detect.Alert) string {
	return fmt.Sprintf("%s (threshold %s over %s)", FormatValue(a.Value, a.Unit),
		FormatValue(a.Threshold, a.Unit), time.Duration(a.Window))
}

// checkUnit is the unit of what a check measured, by the check's name in
// Alert.Values: shares and percentiles (of latency_ms) as the engine
// reports Unit for them, a rate per second, anything else a count.
func checkUnit(name string) string {
	switch name {
	case "share", "distinct_share":
		return detect.UnitShare
	case "percentile":
		return detect.UnitMS
	}
	return ""
}

// FormatChecks writes what each check of the alert's condition measured,
// by check name, each in its unit: "count 12, share 81.2%"; empty when the
// alert carries no values.
func FormatChecks(a detect.Alert) string {
	parts := make([]string, 0, len(a.Values))
	for _, name := range slices.Sorted(maps.Keys(a.Values)) {
		v := FormatValue(a.Values[name], checkUnit(name))
		if name == "rate" {
			v += "/s"
		}
		parts = append(parts, name+" "+v)
	}
	return strings.Join(parts, ", ")
}

// Condition writes the condition that held and what its checks measured:
// "fast: count 12, share 81.2%"; empty when the alert says neither.
func Condition(a detect.Alert) string {
	checks := FormatChecks(a)
	switch {
	case a.Condition == "":
		return checks
	case checks == "":
		return a.Condition
	}
	return a.Condition + ": " + checks
}

// IncidentSeverity is the severity of the alert's incident, or the alert's
// own when it has no incident.
func IncidentSeverity(a detect.Alert) string {
	if a.IncidentSeverity != "" {
		return a.IncidentSeverity
	}
	return a.Severity
}

// SeverityRank orders severities as detect.Severities does; an unknown one
// ranks below all.
func SeverityRank(s string) int { return slices.Index(detect.Severities, s) }

// References writes the rule's MITRE ATT&CK techniques and OWASP AppSensor
// detection points: "ATT&CK T1110.001, T1078 · AppSensor AE3"; empty when
// the rule names none.
func References(a detect.Alert) string {
	var parts []string
	if len(a.Attack) > 0 {
		parts = append(parts, "ATT&CK "+strings.Join(a.Attack, ", "))
	}
	if len(a.AppSensor) > 0 {
		parts = append(parts, "AppSensor "+strings.Join(a.AppSensor, ", "))
	}
	return strings.Join(parts, " · ")
}
