package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
)

// TestRestartWithAClockAhead restarts the daemon during an attack whose
// stream also holds an event stamped four minutes ahead (a publisher's
// clock runs fast; validation accepts up to five). Live, that event moved
// the watermark no further than its arrival; the rebuild after the restart
// must treat it alike: none of the attack's events is late, and the
// attack's alert neither resolves nor is announced again.
func TestRestartWithAClockAhead(t *testing.T) {
	cfg := testConfig(t)
	cfg.Detect.Lateness = time.Second
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	var first testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &first})
	_, js := connectJS(t, r.d.NATSURL())
	start := time.Now()
	ahead := validEvent(1, start.Add(4*time.Minute))
	publish(t, js, "vigil.events."+ahead.Service, ahead.RequestID, ahead.AppendJSON(nil))
	publishAttack(t, r.d.NATSURL(), 60)
	testkit.WaitUntil(t, 15*time.Second, "the brute-force alert", func() bool {
		return strings.Contains(first.String(), `"rule":"brute_force_source_ip"`)
	})
	if late := r.d.detector.engine().Stats().Late; late != 0 {
		t.Fatalf("%d events late before the restart", late)
	}
	r.stop()
	// The restart comes well after the attack's events, as any real one.
	testkit.WaitUntil(t, 10*time.Second, "the attack to be older than twice the lateness", func() bool {
		return time.Since(start) > 3*cfg.Detect.Lateness
	})

	var second testkit.SyncBuffer
	clk := clock.NewFake(time.Now())
	r = startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &second, Clock: clk})
	waitSettled(t, r, clk)
	_, js = connectJS(t, r.d.NATSURL())
	testkit.WaitFor(t, 15*time.Second, "the notification outbox to drain", testkit.StreamEmpty(js, notify.OutboxStream))
	if late := r.d.detector.engine().Stats().Late; late != 0 {
		t.Errorf("%d events late after the restart; the rebuild dragged the watermark to the event ahead", late)
	}
	if strings.Contains(second.String(), "brute_force_source_ip") {
		t.Errorf("the attack's alert was resolved or announced again after the restart:\n%s", second.String())
	}
	if err := firing(r.d, "brute_force_source_ip"); err != nil {
		t.Error(err)
	}
}

// firing reports nil when d's engine fires an alert of rule.
func firing(d *Daemon, rule string) error {
	for _, a := range d.detector.engine().Firing() {
		if a.Rule == rule {
			return nil
		}
	}
	return fmt.Errorf("no %s alert fires", rule)
}
