package notify

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// Reconcile brings alert state in line with the detection engine once it
// has seen every stored event: alerts firing now (Engine.Firing) and not yet
// announced are announced; alerts announced as firing that no longer fire
// are resolved at endsAt, normally the engine's watermark; alerts already
// announced are left alone (see Announce).
//
// Call it only when the engine is caught up with the stream. Right after a
// restart the engine holds only what it replayed; an alert that does not
// fire yet may fire again from events still to come, so resolving it then
// would announce it twice. Use Announce until the engine has caught up.
func (n *Notifier) Reconcile(ctx context.Context, firing []detect.Alert, endsAt time.Time) error {
	known, err := n.FiringAlerts(ctx)
	if err != nil {
		return err
	}
	now := make(map[string]bool, len(firing))
	for _, a := range firing {
		now[a.Fingerprint] = true
	}
	errs := []error{n.Announce(ctx, firing)}
	for _, a := range known {
		if now[a.Fingerprint] {
			continue
		}
		a.State, a.Transition, a.EndsAt = detect.StateResolved, detect.TransitionResolved, endsAt
		errs = append(errs, n.Notify(ctx, a))
	}
	return errors.Join(errs...)
}

// Announce announces the alerts of firing that were not announced yet, and
// tells receivers the routes pick but that were not told of an alert already
// announced (receivers added since it fired) that it fires; it leaves every
// other alert alone, and counts an alert already announced in no metric.
// The daemon calls it after replaying the stream into a muted engine, so
// that an alert raised by events Vigil had not processed before a restart is
// not lost.
func (n *Notifier) Announce(ctx context.Context, firing []detect.Alert) error {
	return n.announce(ctx, firing, modeAnnounce)
}

func (n *Notifier) announce(ctx context.Context, firing []detect.Alert, mode notifyMode) error {
	var errs []error
	for _, a := range firing {
		a.State, a.Transition = detect.StateFiring, detect.TransitionFiring
		errs = append(errs, n.notify(ctx, a, mode))
	}
	return errors.Join(errs...)
}

// catchUp announces every alert the state has firing, so that receivers
// added by the config this Notifier was built from (a reload or a restart)
// hear of alerts that fired before them. An alert resolved between the read
// and its announcement is left alone. It reports whether it succeeded.
func (n *Notifier) catchUp(ctx context.Context) bool {
	firing, err := n.FiringAlerts(ctx)
	if err == nil {
		err = n.announce(ctx, firing, modeCatchUp)
	}
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("firing alerts not sent yet to receivers added since they fired; retrying", "err", err)
		}
		return false
	}
	return true
}
