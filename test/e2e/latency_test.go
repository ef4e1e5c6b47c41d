package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// BenchmarkDetectionLatency measures, under background traffic, the time
// from publishing the event that crosses a threshold (the 50th failed login
// from one address, floodRule's, run beside the default rules) to the
// webhook receiver getting the alert. Each of VIGIL_E2E_ATTACKS attacks (default 100) comes from its
// own address: 49 failures in one NDJSON message, then the crossing event
// alone. Background traffic is VIGIL_E2E_BG_RATE events/s (default 50,000)
// through emit, about 100 events per message; the benchmark reports the
// rate actually published and applied, so a machine that cannot sustain
// the asked rate shows it.
//
//	go test -run '^$' -bench DetectionLatency -benchtime 1x ./test/e2e/
func BenchmarkDetectionLatency(b *testing.B) {
	attacks := envInt("VIGIL_E2E_ATTACKS", 100)
	rate := envInt("VIGIL_E2E_BG_RATE", 50_000)
	for range b.N {
		recv := newReceiver(b, "hook", 0)
		v := newVigil(b, vigilConfig{Receivers: []receiverSpec{recv.spec()}, Rules: []string{floodRule}, Lateness: 5 * time.Second})
		c := connect(b, v.natsURL())
		tr := startTraffic(b, v.natsURL(), rate)
		testkit.WaitFor(b, 30*time.Second, "background traffic applied", func() error {
			return receivedAtLeast(v, float64(rate))
		})
		start, before := time.Now(), tr.em.Stats().Published

		lat := make([]time.Duration, 0, attacks)
		for i := range attacks {
			ip := fmt.Sprintf("10.200.%d.%d", i/250, i%250+1)
			c.publishAttackNDJSON(b, ip, 49)
			sent := time.Now()
			c.publishAttack(b, ip, 49, 50)
			k := alertKey{ruleFlood, ip, firing}
			testkit.WaitFor(b, 30*time.Second, "the alert for "+ip, func() error { return wantCount(recv, k, 1) })
			at, _ := recv.first(k)
			lat = append(lat, at.Sub(sent))
		}
		elapsed := time.Since(start)
		published := tr.em.Stats().Published - before
		st := tr.stop(b)
		testkit.WaitFor(b, time.Minute, "background traffic applied", func() error {
			return receivedAtLeast(v, float64(st.Published))
		})
		slices.Sort(lat)
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[(len(lat)*99+99)/100-1]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(published)/elapsed.Seconds(), "background-events/s")
		b.ReportMetric(float64(len(lat)), "attacks")
		v.stop()
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// publishAttackNDJSON publishes n failed logins from ip, numbered from 0,
// as one NDJSON message, and waits until JetStream stored it.
func (c *client) publishAttackNDJSON(t testing.TB, ip string, n int) {
	t.Helper()
	var ev event.Event
	var data []byte
	ids := make([]string, 0, n)
	for i := range n {
		loginFailure(&ev, ip, i, time.Now())
		if i > 0 {
			data = append(data, '\n')
		}
		data = ev.AppendJSON(data)
		ids = append(ids, ev.RequestID)
	}
	m := nats.NewMsg(ingest.SubjectPrefix + ev.Service)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("e2e-batch-%s", ip))
	f, err := c.js.PublishMsgAsync(m)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	c.waitAcks(t, []jetstream.PubAckFuture{f})
}
