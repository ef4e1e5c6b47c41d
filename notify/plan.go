package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/detect"
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
)

// plan is what Notify does with one transition.
type plan struct {
	outcome    string
	record     *alertRecord // nil: leave the state alone
	deliveries []delivery
}

// planInput is everything a plan depends on.
type planInput struct {
	prev       *alertRecord
	alert      detect.Alert
	now        time.Time
	routed     []string          // receivers the routes pick for this alert
	configured func(string) bool // whether a receiver still exists
	silencedBy []string          // active silences matching the alert
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
	for _, name := range in.routed {
		k := detect.TransitionFiring
		if kind == detect.TransitionRepeat && slices.Contains(rec.Notified, name) {
			k = detect.TransitionRepeat
		}
		p.deliveries = append(p.deliveries, newDelivery(&rec, a, k, name, in.now))
		if !slices.Contains(rec.Notified, name) {
			rec.Notified = append(rec.Notified, name)
		}
	}
	if len(p.deliveries) == 0 {
		p.outcome = outcomeUnrouted
	} else {
		rec.LastNotified = in.now
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
		if !slices.Contains(rec.Notified, name) {
			p.deliveries = append(p.deliveries, newDelivery(&rec, a, detect.TransitionFiring, name, in.now))
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
		ID:       deliveryID(a.Fingerprint, rec.Episode, a.StartsAt, kind, seq, name),
		Receiver: name,
		Episode:  rec.Episode,
		Alert:    a,
		Created:  now,
	}
}

// deliveryID derives a delivery's id from what makes it unique, so that
// enqueuing it twice (a retried Notify, a restart) yields the same id.
func deliveryID(fp string, episode int, startsAt time.Time, kind detect.Transition, seq int, recv string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%d\x00%s", fp, episode, startsAt.UnixNano(), kind, seq, recv)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
