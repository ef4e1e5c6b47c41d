package notify

import (
	"context"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Incident threads. A receiver that threads (receiver.Threader: Slack through
// the Web API) keeps one thread per incident: the incident's first alert to
// reach it opens the thread, every later notification about the incident is
// posted in it. The worker keeps each thread in VIGIL_ALERTS, so that a
// restart keeps threading: the top message, what it shows, the alert that
// opened it, and which of the thread's alerts still fire, from which the
// receiver tells when the incident has resolved.

const (
	// maxThreadFiring bounds the firing alerts a thread tracks; past it the
	// thread no longer knows when the incident resolves.
	maxThreadFiring = 1000
	// maxThreadRules bounds the rule names a thread lists.
	maxThreadRules = 32
)

// threadRecord is one receiver's thread about one incident, under
// thread.<incident>.<receiver>.
type threadRecord struct {
	Thread receiver.Thread `json:"thread"`
	// Firing lists the fingerprints of the thread's alerts still firing at
	// the receiver; Untracked is set once there were more than
	// maxThreadFiring.
	Firing    []string `json:"firing,omitempty"`
	Untracked bool     `json:"untracked,omitempty"`
	// LastID is the last delivery accepted in the thread, to skip a
	// redelivery of it.
	LastID    string    `json:"last_id"`
	UpdatedAt time.Time `json:"updated_at"`
}

// thread returns this receiver's thread about the incident of d's alert: the
// stored one, a new one when there is none, or nil when the receiver does not
// thread or the alert has no incident. A thread that cannot be read is
// logged and left out: the alert is delivered on its own.
func (w *worker) thread(ctx context.Context, d delivery) *threadRecord {
	t, ok := w.recv.(receiver.Threader)
	if !ok || !t.Threads() || d.Alert.IncidentID == "" {
		return nil
	}
	rec, err := w.state.thread(ctx, d.Alert.IncidentID, w.name)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("read incident thread failed; delivering the alert outside it", "incident_id", d.Alert.IncidentID, "err", err)
		}
		return nil
	}
	if rec == nil {
		rec = &threadRecord{Thread: receiver.Thread{ID: d.Alert.IncidentID}}
	}
	return rec
}

// next returns the thread as it will be once alert a is delivered in it by
// delivery id: a among the firing alerts or out of them, and the thread's
// tallies with it.
func (r *threadRecord) next(a detect.Alert, id string, now time.Time) *threadRecord {
	out := *r
	out.Firing = slices.Clone(r.Firing)
	th := &out.Thread
	th.Rules = slices.Clone(th.Rules)
	if th.Ref.IsZero() || a.Fingerprint == th.First.Fingerprint {
		th.First = a
	}
	i := slices.Index(out.Firing, a.Fingerprint)
	switch {
	case a.Transition == detect.TransitionResolved:
		if i >= 0 {
			out.Firing = slices.Delete(out.Firing, i, i+1)
		}
	case i < 0:
		th.Alerts++
		if len(out.Firing) < maxThreadFiring {
			out.Firing = append(out.Firing, a.Fingerprint)
		} else {
			out.Untracked = true
		}
		if !slices.Contains(th.Rules, a.Rule) && len(th.Rules) < maxThreadRules {
			th.Rules = append(th.Rules, a.Rule)
		}
	}
	th.Firing = len(out.Firing)
	if out.Untracked {
		th.Firing = -1
	}
	out.LastID, out.UpdatedAt = id, now
	return &out
}
