package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// delivery is one message in the outbox: an alert transition for one
// receiver.
type delivery struct {
	// ID is stable for this (alert episode, transition, receiver); it is
	// the Nats-Msg-Id and the receivers' idempotency key.
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	Episode  int    `json:"episode"`
	// Alert is the transition as this receiver should see it: its
	// Transition is what the receiver is told (a receiver that missed the
	// start of an episode is told "firing" on a repeat).
	Alert   detect.Alert `json:"alert"`
	Created time.Time    `json:"created"`
}

// Transition outcomes, the outcome label of vigil_alert_transitions_total.
const (
	outcomeNotified  = "notified"
	outcomeDuplicate = "duplicate"
	outcomeSilenced  = "silenced"
	outcomeUnrouted  = "unrouted"
	// outcomeFolded: every receiver the routes pick hears of the alert's
	// incident once (per_incident) and was told of it already.
	outcomeFolded = "folded"
)

// plan is what Notify does with one transition.
type plan struct {
	outcome    string
	record     *alertRecord // nil: leave the state alone
	deliveries []delivery
	// told maps the per_incident receivers told of the alert's incident
	// by this plan to the incident severity they were told.
	told map[string]string
}

// planInput is everything a plan depends on.
type planInput struct {
	prev       *alertRecord
	alert      detect.Alert
	now        time.Time
	routed     []string          // receivers the routes pick for this alert
	configured func(string) bool // whether a receiver still exists
	silencedBy []string          // active silences matching the alert
	// perIncident holds the routed receivers that hear of an incident
	// once; told, the incident severity each was told of the alert's
	// incident so far.
	perIncident map[string]bool
	told        map[string]string
}

// folds reports whether receiver name, not told of the alert yet, is left
// out because it hears of the alert's incident once and was told of it at
// the alert's incident severity or higher.
func (in *planInput) folds(name string) bool {
	told, ok := in.told[name]
	return in.perIncident[name] && in.alert.IncidentID != "" && ok &&
		receiver.SeverityRank(receiver.IncidentSeverity(in.alert)) <= receiver.SeverityRank(told)
}

// tell adds a delivery of kind to name, and notes a per_incident
// receiver's being told of the incident by an alert firing. (A repeat
// carries the incident's severity too, but a pager does not page again for
// it, so it does not count as telling.)
func (p *plan) tell(in *planInput, rec *alertRecord, a detect.Alert, kind detect.Transition, name string) {
	p.deliveries = append(p.deliveries, newDelivery(rec, a, kind, name, in.now))
	if kind == detect.TransitionFiring && in.perIncident[name] && a.IncidentID != "" {
		if p.told == nil {
			p.told = map[string]string{}
		}
		p.told[name] = receiver.IncidentSeverity(a)
	}
}

// episodeAlert keeps an alert's episode in the incident it was announced
// with: a later transition of an alert the state has firing that the
// engine placed in another incident (after a restart, or state from a
// Vigil without incidents) keeps the first one, so that receivers thread
// it, and Alertmanager labels it, as they did.
func episodeAlert(prev *alertRecord, a detect.Alert) detect.Alert {
	if prev != nil && prev.Firing && a.IncidentID != prev.Alert.IncidentID {
		a.IncidentID, a.IncidentSeverity = prev.Alert.IncidentID, prev.Alert.IncidentSeverity
	}
	return a
}

// makePlan decides, from the alert's stored state, what a transition means:
// a firing alert already announced is a duplicate (only receivers not told
// of it yet hear of it); a repeat of an alert never seen firing starts an
// episode; a resolve goes to the receivers that were told about the episode,
// silenced or not, so no channel keeps a stale firing message; a resolve of
// an alert not firing is a duplicate.
func makePlan(in planInput) plan {
	a := in.alert
	switch a.Transition {
	case detect.TransitionFiring, detect.TransitionRepeat:
		if in.prev != nil && in.prev.Firing && a.Transition == detect.TransitionFiring {
			return planCatchUp(in)
		}
		return planFiring(in)
	case detect.TransitionResolved:
		if in.prev == nil || !in.prev.Firing {
			return plan{outcome: outcomeDuplicate}
		}
		return planResolved(in)
	}
	return plan{outcome: outcomeDuplicate}
}

func planFiring(in planInput) plan {
	a := in.alert
	var rec alertRecord
	kind := detect.TransitionFiring
	if in.prev != nil && in.prev.Firing {
		rec = *in.prev
		rec.Notified = slices.Clone(in.prev.Notified)
		rec.Repeats++
		a.StartsAt = in.prev.Alert.StartsAt
		kind = detect.TransitionRepeat
	} else {
		rec = alertRecord{Firing: true, Episode: 1}
		if in.prev != nil {
			rec.Episode = in.prev.Episode + 1
		}
	}
	a.State, a.EndsAt = detect.StateFiring, time.Time{}
	rec.Alert, rec.UpdatedAt, rec.SilencedBy = a, in.now, in.silencedBy
	if len(in.silencedBy) > 0 {
		return plan{outcome: outcomeSilenced, record: &rec}
	}
	p := plan{outcome: outcomeNotified, record: &rec}
	folded := false
	for _, name := range in.routed {
		k := detect.TransitionFiring
		if kind == detect.TransitionRepeat && slices.Contains(rec.Notified, name) {
			k = detect.TransitionRepeat
		}
		if k == detect.TransitionFiring && in.folds(name) {
			folded = true
			continue
		}
		p.tell(&in, &rec, a, k, name)
		if !slices.Contains(rec.Notified, name) {
			rec.Notified = append(rec.Notified, name)
		}
	}
	switch {
	case len(p.deliveries) > 0:
		rec.LastNotified = in.now
	case folded:
		p.outcome = outcomeFolded
	default:
		p.outcome = outcomeUnrouted
	}
	return p
}

// planCatchUp handles a firing of an alert that already fires (the
// announcement after a restart or rules reload, or the engine saying it
// again): nothing is announced twice, but a receiver the routes now pick that
// was not told of the episode (added since, or the silence that muted the
// alert has ended) is told it fires, so it need not wait for the next repeat.
func planCatchUp(in planInput) plan {
	p := plan{outcome: outcomeDuplicate}
	if len(in.silencedBy) > 0 {
		return p
	}
	rec := *in.prev
	rec.Notified = slices.Clone(in.prev.Notified)
	a := in.alert
	a.StartsAt, a.State, a.EndsAt = in.prev.Alert.StartsAt, detect.StateFiring, time.Time{}
	for _, name := range in.routed {
		if !slices.Contains(rec.Notified, name) && !in.folds(name) {
			p.tell(&in, &rec, a, detect.TransitionFiring, name)
			rec.Notified = append(rec.Notified, name)
		}
	}
	if len(p.deliveries) > 0 {
		rec.SilencedBy, rec.LastNotified, rec.UpdatedAt = nil, in.now, in.now
		p.record = &rec
	}
	return p
}

func planResolved(in planInput) plan {
	rec := *in.prev
	a := in.alert
	a.StartsAt = in.prev.Alert.StartsAt
	a.State = detect.StateResolved
	if a.EndsAt.IsZero() {
		a.EndsAt = in.now
	}
	rec.Alert, rec.Firing, rec.UpdatedAt, rec.SilencedBy = a, false, in.now, nil
	p := plan{outcome: outcomeNotified, record: &rec}
	for _, name := range in.prev.Notified {
		if in.configured(name) {
			p.deliveries = append(p.deliveries, newDelivery(&rec, a, detect.TransitionResolved, name, in.now))
		}
	}
	if len(p.deliveries) == 0 {
		p.outcome = outcomeUnrouted
	} else {
		rec.LastNotified = in.now
	}
	return p
}

func newDelivery(rec *alertRecord, a detect.Alert, kind detect.Transition, name string, now time.Time) delivery {
	a.Transition = kind
	seq := 0
	if kind == detect.TransitionRepeat {
		seq = rec.Repeats
	}
	return delivery{
		ID:       deliveryID(a.Fingerprint, rec.Episode, kind, seq, name),
		Receiver: name,
		Episode:  rec.Episode,
		Alert:    a,
		Created:  now,
	}
}

// deliveryID derives a delivery's id from what makes it unique, so that
// enqueuing it twice (a retried Notify, a restart, two cluster members
// announcing one alert) yields the same id. It holds nothing two members
// could see differently, such as the alert's start: the episode, counted in
// the alert state both share, tells one firing of a fingerprint from the
// next.
func deliveryID(fp string, episode int, kind detect.Transition, seq int, recv string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d\x00%s", fp, episode, kind, seq, recv)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
