package e2e

import (
	"fmt"
	"github.com/vigil-sec/vigil/internal/testkit"
	"net/http"
	"testing"
	"time"
)

// TestExternalNATSOutage stops an external nats-server process while
// services keep publishing (through emit, which buffers and retries), keeps
// it away for 5s (30s with VIGIL_E2E_LONG=1), and starts it again on the
// same address and store. Vigil must notice (/readyz 503), reconnect by
// itself (/readyz 200), and apply exactly the events JetStream accepted.
func TestExternalNATSOutage(t *testing.T) {
	t.Parallel()
	outage := pick(5*time.Second, 30*time.Second)
	rate := pick(2000, 5000)
	ns := startNATSServer(t)
	v := newVigil(t, vigilConfig{NATSURL: ns.url()})
	tr := startTraffic(t, ns.url(), rate)
	testkit.WaitFor(t, 20*time.Second, "events flowing", func() error { return receivedAtLeast(v, 1000) })

	ns.stop()
	down := time.Now()
	testkit.WaitFor(t, 10*time.Second, "/readyz to report NATS gone", func() error {
		return readyz(v, http.StatusServiceUnavailable)
	})
	if got := v.metric("vigil_nats_connected"); got != 0 {
		t.Errorf("vigil_nats_connected = %v while NATS is down", got)
	}
	testkit.WaitFor(t, outage+10*time.Second, "the outage to last its time", func() error {
		if err := readyz(v, http.StatusServiceUnavailable); err != nil {
			t.Fatalf("during the outage: %v", err)
		}
		if d := time.Since(down); d < outage {
			return fmt.Errorf("down for %s", d)
		}
		return nil
	})

	ns.start()
	back := time.Now()
	testkit.WaitFor(t, 30*time.Second, "/readyz 200 after NATS returned", func() error {
		return readyz(v, http.StatusOK)
	})
	t.Logf("ready again %s after NATS returned", time.Since(back).Round(time.Millisecond))
	before := v.metric("vigil_events_received_total")
	testkit.WaitFor(t, 20*time.Second, "new events applied", func() error { return receivedAtLeast(v, before+1000) })

	st := tr.stop(t)
	if st.Dropped != 0 || st.Pending() != 0 {
		t.Fatalf("publisher lost events: %+v", st)
	}
	testkit.WaitFor(t, 60*time.Second, "every accepted event applied", func() error {
		return receivedAtLeast(v, float64(st.Published))
	})
	t.Logf("caught up %s after NATS returned; %d events, %d publish errors retried",
		time.Since(back).Round(time.Millisecond), st.Published, st.PublishErrors)
	c := connect(t, ns.url())
	checkAllStoredAndAcked(t, c, int(st.Published))
	if err := receivedExactly(v, float64(st.Published)); err != nil {
		t.Error(err) // nothing applied twice
	}
	noLateEvents(t, v)
}

// TestEmbeddedNATSRestart takes the embedded NATS server away with the
// daemon itself, while services keep publishing: a clean restart (SIGTERM)
// and a crash (SIGKILL). The publisher holds its events while NATS is
// gone; everything JetStream accepted must be stored and applied.
//
// After a clean restart (which restores the checkpoint the stop took)
// every event is applied exactly once. After a
// crash, JetStream may have lost the last acknowledgements (the embedded
// server does not sync its consumer state to disk on every ack), so a few
// events can be delivered again: detection does not apply them twice (the
// rebuild covers them), but vigil_events_received_total counts them again.
// The crash case therefore requires at least once and reports the excess.
func TestEmbeddedNATSRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		down  func(v *vigil)
		exact bool
	}{
		{"sigterm", (*vigil).stop, true},
		{"kill9", (*vigil).kill9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testEmbeddedRestart(t, tc.down, tc.exact)
		})
	}
}

func testEmbeddedRestart(t *testing.T, down func(v *vigil), exact bool) {
	rate := pick(2000, 5000)
	v := newVigil(t, vigilConfig{})
	tr := startTraffic(t, v.natsURL(), rate)
	testkit.WaitFor(t, 20*time.Second, "events flowing", func() error { return receivedAtLeast(v, 1000) })

	// Let the daemon catch up with no event in flight, so that what the
	// first process applied is known exactly; then take it down and
	// publish on while it is away.
	tr.pause()
	c := connect(t, v.natsURL())
	testkit.WaitFor(t, 30*time.Second, "the first process caught up", func() error {
		st := tr.em.Stats()
		if st.Pending() != 0 {
			return fmt.Errorf("%d events not yet published", st.Pending())
		}
		if err := receivedExactly(v, float64(st.Published)); err != nil {
			return err
		}
		return c.allAcked(t)
	})
	applied := v.metric("vigil_events_received_total")
	down(v)
	tr.resume()
	testkit.WaitFor(t, 10*time.Second, "events held while NATS is away", func() error {
		if st := tr.em.Stats(); st.Pending() == 0 {
			return fmt.Errorf("nothing pending: %+v", st)
		}
		return nil
	})

	v.restart()
	if exact {
		// A clean stop checkpointed detection state, with every event
		// applied: the restart restores it and replays nothing.
		restored := v.logRecords("detection windows restored from a checkpoint")
		if len(restored) != 1 || restored[0]["events_after_it"] != float64(0) {
			t.Errorf("restore log %v, want one restore replaying no event", restored)
		}
	} else {
		// A crash takes no checkpoint of its own: the restart restores the
		// one taken once the first process had caught up, if it took one
		// in time, or rebuilds from the stream.
		restored := v.logRecords("detection windows restored from a checkpoint")
		rebuilt := v.logRecords("detection windows rebuilt")
		if len(restored)+len(rebuilt) != 1 {
			t.Errorf("restore log %v, rebuild log %v, want one of them", restored, rebuilt)
		}
	}
	before := v.metric("vigil_events_received_total")
	testkit.WaitFor(t, 20*time.Second, "new events applied", func() error { return receivedAtLeast(v, before+1000) })
	st := tr.stop(t)
	if st.Dropped != 0 || st.Pending() != 0 {
		t.Fatalf("publisher lost events: %+v", st)
	}
	want := float64(st.Published) - applied
	if exact {
		testkit.WaitFor(t, 60*time.Second, "every accepted event applied", func() error {
			return receivedExactly(v, want)
		})
	} else {
		testkit.WaitFor(t, 60*time.Second, "every accepted event applied", func() error {
			return receivedAtLeast(v, want)
		})
	}
	checkAllStoredAndAcked(t, c, int(st.Published))
	noLateEvents(t, v)
	if got := v.metric("vigil_events_received_total"); got != want {
		t.Logf("events applied again after the crash: %v", got-want)
		if exact {
			t.Errorf("received %v, want %v", got, want)
		}
	}
}

// checkAllStoredAndAcked checks that the events stream holds exactly the
// published events and that Vigil's consumer acknowledged all of them.
func checkAllStoredAndAcked(t *testing.T, c *client, published int) {
	t.Helper()
	if got := c.storedEvents(t); got != published {
		t.Errorf("stream holds %d events, publisher had %d acknowledged", got, published)
	}
	testkit.WaitFor(t, 30*time.Second, "every stored message acknowledged", func() error {
		if err := c.allAcked(t); err != nil {
			return err
		}
		if _, ci := c.streamInfo(t); ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d unacknowledged", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// noLateEvents fails t if detection left any event out of its windows as
// late: events held back by an outage must still count, since the wall
// clock may move the watermark only once Vigil has caught up.
func noLateEvents(t *testing.T, v *vigil) {
	t.Helper()
	if late := v.metric("vigil_events_late_total"); late != 0 {
		t.Errorf("vigil_events_late_total = %v, want 0", late)
	}
}

func readyz(v *vigil, want int) error {
	if code, body := v.get("/readyz"); code != want {
		return fmt.Errorf("/readyz %d %s, want %d", code, body, want)
	}
	return nil
}

func receivedAtLeast(v *vigil, n float64) error {
	m, err := v.metrics()
	if err != nil {
		return err
	}
	if got := m["vigil_events_received_total"]; got < n {
		return fmt.Errorf("received %v events, want at least %v", got, n)
	}
	return nil
}

func receivedExactly(v *vigil, n float64) error {
	m, err := v.metrics()
	if err != nil {
		return err
	}
	if got := m["vigil_events_received_total"]; got != n {
		return fmt.Errorf("received %v events, want %v", got, n)
	}
	return nil
}

// TestStopWhileNATSDown sends SIGTERM to a daemon whose external NATS
// server is gone: an SRE stopping or restarting Vigil during an outage
// must not have to wait for NATS, nor kill it.
func TestStopWhileNATSDown(t *testing.T) {
	t.Parallel()
	ns := startNATSServer(t)
	v := newVigil(t, vigilConfig{NATSURL: ns.url()})
	c := connect(t, ns.url())
	c.publishAttack(t, "203.0.113.50", 0, 10)
	testkit.WaitFor(t, 10*time.Second, "the events applied", func() error { return receivedAtLeast(v, 10) })

	ns.stop()
	testkit.WaitFor(t, 10*time.Second, "/readyz to report NATS gone", func() error {
		return readyz(v, http.StatusServiceUnavailable)
	})
	start := time.Now()
	v.p.terminate(20 * time.Second) // fails the test if it does not exit cleanly in time
	t.Logf("stopped %s after SIGTERM with NATS down", time.Since(start).Round(time.Millisecond))
}
