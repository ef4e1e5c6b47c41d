package notify

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// Reconcile brings alert state in line with the detection engine after a
// restart. The daemon replays its event stream into a muted engine, then
// passes what fires now (Engine.Firing) and the engine's watermark:
// alerts firing now and not yet announced are announced; alerts announced
// as firing that no longer fire are resolved at endsAt; alerts already
// announced are left alone (Notify drops the repeat announcement).
func (n *Notifier) Reconcile(ctx context.Context, firing []detect.Alert, endsAt time.Time) error {
	known, err := n.FiringAlerts(ctx)
	if err != nil {
		return err
	}
	now := make(map[string]bool, len(firing))
	var errs []error
	for _, a := range firing {
		now[a.Fingerprint] = true
		a.State, a.Transition = detect.StateFiring, detect.TransitionFiring
		errs = append(errs, n.Notify(ctx, a))
	}
	for _, a := range known {
		if now[a.Fingerprint] {
			continue
		}
		a.State, a.Transition, a.EndsAt = detect.StateResolved, detect.TransitionResolved, endsAt
		errs = append(errs, n.Notify(ctx, a))
	}
	return errors.Join(errs...)
}
