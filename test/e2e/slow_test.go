package e2e

import (
	"fmt"
	"github.com/vigil-sec/vigil/internal/testkit"
	"testing"
	"time"
)

// TestSlowReceiverSlowsNothingElse routes every alert to two webhook
// receivers, one of which takes 5s per request, while background traffic
// flows. Each attack must reach the fast receiver within moments of the
// event that crossed the threshold, while the slow one is still busy, and
// ingestion must keep up with the background traffic meanwhile.
func TestSlowReceiverSlowsNothingElse(t *testing.T) {
	t.Parallel()
	const attacks = 5
	const bound = 3 * time.Second // well below the 5s a shared queue would add
	slow := newReceiver(t, "slow", 5*time.Second)
	fast := newReceiver(t, "fast", 0)
	v := newVigil(t, vigilConfig{Receivers: []receiverSpec{slow.spec(), fast.spec()}, Rules: []string{burstRule}, OnlyRules: true})
	c := connect(t, v.natsURL())
	tr := startTraffic(t, v.natsURL(), 1000)

	crossed := make([]time.Time, attacks)
	for i := range attacks {
		ip := fmt.Sprintf("198.51.100.%d", 10+i)
		c.publishAttack(t, ip, 0, 19)
		crossed[i] = time.Now()
		c.publishAttack(t, ip, 19, 20) // the 20th failure crosses the threshold
		testkit.WaitFor(t, 10*time.Second, "the fast receiver to get "+ip, func() error {
			return wantCount(fast, alertKey{ruleBurst, ip, firing}, 1)
		})
		at, _ := fast.first(alertKey{ruleBurst, ip, firing})
		if d := at.Sub(crossed[i]); d > bound {
			t.Errorf("attack %d reached the fast receiver %s after crossing, want under %s", i, d, bound)
		}
	}
	if n := len(slow.deliveries()); n >= attacks {
		t.Fatalf("the slow receiver already has %d alerts; it is not slow", n)
	}
	published := float64(tr.em.Stats().Published)
	testkit.WaitFor(t, 10*time.Second, "background traffic applied while the slow receiver is busy", func() error {
		return receivedAtLeast(v, published+attacks*20)
	})
	if n := len(slow.deliveries()); n >= attacks {
		t.Errorf("the slow receiver finished (%d alerts) before ingestion was checked", n)
	}
	testkit.WaitFor(t, time.Duration(attacks+2)*6*time.Second, "the slow receiver to get every alert", func() error {
		if n := len(slow.deliveries()); n != attacks {
			return fmt.Errorf("%d of %d alerts", n, attacks)
		}
		return nil
	})
}
