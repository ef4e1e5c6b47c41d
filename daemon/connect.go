package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// natsWaitLog is how often the daemon repeats, while it waits for NATS at
// start, that it is still waiting and why.
const natsWaitLog = 10 * time.Second

// waitConnected returns once the NATS connection is up. An external NATS
// server that does not answer (yet) is waited for: Vigil may start before
// it, as under Kubernetes or systemd. The log says so at once and every
// natsWaitLog after, with the last connection error, until ctx is done.
func (d *Daemon) waitConnected(ctx context.Context, failure *connectFailure) error {
	up := d.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer d.nc.RemoveStatusListener(up)
	if d.nc.IsConnected() {
		return nil
	}
	where := redactURLs(d.cfg.NATS.URL)
	ticker, tick := d.clock.NewTicker(natsWaitLog)
	defer ticker.Stop()
	for {
		if d.nc.IsConnected() {
			d.log.Info("nats connected", "url", where)
			return nil
		}
		d.log.Warn("waiting for NATS; Vigil starts once it answers: check that it runs and that nats.url (--nats-url) and the credentials are right",
			"url", where, "err", failure.get())
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped while waiting for NATS at %s (last error: %v); start NATS or correct --nats-url (config: nats.url)", where, failure.get())
		case <-up:
		case <-tick:
		}
	}
}

// connectFailure keeps the last error of the NATS client's connection
// attempts.
type connectFailure struct {
	mu  sync.Mutex
	err error
}

func (f *connectFailure) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *connectFailure) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		return fmt.Errorf("no answer yet")
	}
	return f.err
}

// redactURLs returns a comma-separated list of NATS URLs with any password
// replaced, for the log.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparsable url)"
		}
	}
	return strings.Join(parts, ",")
}

// attemptTimeout bounds one attempt of retryLost.
const attemptTimeout = 10 * time.Second

// retryLost runs fn, a start-up declaration of JetStream resources, again
// while its attempts time out and ctx allows: a request can be lost when
// the connection to a NATS cluster that is still settling (several members
// starting at once) drops and comes back, and the client does not send it
// again. fn must be safe to repeat.
func retryLost[T any](ctx context.Context, log *slog.Logger, what string, fn func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		v, err := fn(actx)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return v, err
		}
		log.Warn("NATS did not answer in time; retrying", "what", what, "err", err)
	}
}
