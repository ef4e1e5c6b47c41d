package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
)

// burstRule and floodRule count failed logins from one address over a
// short window, so that alerts fire and resolve within seconds and a test
// about delivery does not hang on the default rules' tuning (their long
// windows keep an alert firing for many minutes after an attack). Tests
// that check every announcement run them alone (vigilConfig.OnlyRules).
// An attack that crosses floodRule has crossed burstRule too: two alerts
// raised by one attack.
var (
	burstRule = failureRule(ruleBurst, 20)
	floodRule = failureRule(ruleFlood, 50)
)

// failureRule is a rule file with one rule, name, that fires for count
// failed logins from one address within 15 seconds.
func failureRule(name string, count int) string {
	return fmt.Sprintf(`rules:
  - name: %[1]s
    description: %[2]d failed logins from one address within 15 seconds (test rule).
    severity: high
    category: brute_force
    match: status == 401 && endpoint startsWith "/v1/auth/"
    group_by: [source_ip]
    threshold: {count: %[2]d, window: 15s}
    resolve_after: 2s
    summary: '%[2]d failed logins from {{ .Labels.source_ip }}'
`, name, count)
}

// quickRedelivery has JetStream hand out again the events the killed daemon
// had not acknowledged 5s after it delivered them, not the default 30s:
// ingest counts as caught up, and alerts resolve, only once they came back.
var quickRedelivery = map[string]string{"ack_wait": "5s"}

const (
	ruleBurst = "e2e_burst"
	ruleFlood = "e2e_flood"
	firing    = "alert.firing"
	resolved  = "alert.resolved"
)

// TestKill9MidAttack kills the daemon with SIGKILL while three attacks are
// in different states:
//
//   - the first fired before the kill and stops; its alert must not be
//     announced again, and must resolve exactly once afterwards;
//   - the second is halfway to its threshold, its events applied and
//     acknowledged a few seconds before the kill (longer ago than the
//     allowed lateness, as after any real restart); its second half comes
//     after the restart and it must still be detected, once;
//   - the third crosses two rules' thresholds just before the kill, so the
//     daemon may have applied, announced or acknowledged any part of it;
//     each of its alerts must be announced exactly once.
func TestKill9MidAttack(t *testing.T) {
	const ipFired, ipStraddle, ipCrossing = "203.0.113.10", "203.0.113.20", "203.0.113.30"
	const lateness = time.Second
	recv := newReceiver(t, "hook", 0)
	v := newVigil(t, vigilConfig{Receivers: []receiverSpec{recv.spec()}, Rules: []string{burstRule, floodRule},
		OnlyRules: true, Lateness: lateness, Ingest: quickRedelivery})
	c := connect(t, v.natsURL())

	c.publishAttack(t, ipFired, 0, 25)
	testkit.WaitFor(t, 20*time.Second, "the first attack's alert", func() error {
		return wantCount(recv, alertKey{ruleBurst, ipFired, firing}, 1)
	})
	c.publishAttack(t, ipStraddle, 0, 12) // below the threshold of 20
	halfway := time.Now()
	testkit.WaitFor(t, 10*time.Second, "the events so far acknowledged", func() error {
		return c.allAcked(t)
	})
	testkit.WaitFor(t, 10*time.Second, "the first half to be older than the lateness", func() error {
		if age := time.Since(halfway); age < 2*lateness {
			return fmt.Errorf("%s old", age)
		}
		return nil
	})
	c.publishAttack(t, ipCrossing, 0, 60) // crosses e2e_burst (20) and e2e_flood (50)
	v.kill9()

	v.restart()
	c.publishAttack(t, ipStraddle, 12, 24) // the straddling attack crosses 20 now
	want := map[alertKey]int{
		{ruleBurst, ipFired, firing}: 1, {ruleBurst, ipFired, resolved}: 1,
		{ruleBurst, ipStraddle, firing}: 1, {ruleBurst, ipStraddle, resolved}: 1,
		{ruleBurst, ipCrossing, firing}: 1, {ruleBurst, ipCrossing, resolved}: 1,
		{ruleFlood, ipCrossing, firing}: 1, {ruleFlood, ipCrossing, resolved}: 1,
	}
	testkit.WaitFor(t, 45*time.Second, "every expected announcement", func() error {
		return sameAnnouncements(recv.announcements(), want)
	})
	waitOutboxEmpty(t, c)
	v.stop()
	if err := sameAnnouncements(recv.announcements(), want); err != nil {
		t.Error(err)
	}
}

// TestKill9AfterAnnouncing kills the daemon right after the receiver got an
// alert, typically before the daemon acknowledged the events that raised
// it. After the restart JetStream hands those events out again; the alert
// must neither be announced a second time nor be resolved early, and must
// resolve exactly once when the attack's window has passed.
func TestKill9AfterAnnouncing(t *testing.T) {
	const ip = "203.0.113.40"
	recv := newReceiver(t, "hook", 0)
	v := newVigil(t, vigilConfig{Receivers: []receiverSpec{recv.spec()}, Rules: []string{burstRule}, OnlyRules: true,
		Ingest: quickRedelivery})
	c := connect(t, v.natsURL())

	c.publishAttack(t, ip, 0, 25)
	testkit.WaitFor(t, 20*time.Second, "the alert", func() error {
		return wantCount(recv, alertKey{ruleBurst, ip, firing}, 1)
	})
	v.kill9()
	v.restart()
	if _, ci := c.streamInfo(t); ci.NumAckPending > 0 {
		t.Logf("killed with %d messages delivered and not acknowledged", ci.NumAckPending)
	}
	want := map[alertKey]int{{ruleBurst, ip, firing}: 1, {ruleBurst, ip, resolved}: 1}
	testkit.WaitFor(t, 45*time.Second, "the alert to resolve", func() error {
		return sameAnnouncements(recv.announcements(), want)
	})
	resolvedAt, _ := recv.first(alertKey{ruleBurst, ip, resolved})
	firedAt, _ := recv.first(alertKey{ruleBurst, ip, firing})
	// The window is 15s; the alert cannot have resolved before it passed.
	if d := resolvedAt.Sub(firedAt); d < 15*time.Second {
		t.Errorf("resolved %s after firing, before its 15s window passed", d)
	}
	waitOutboxEmpty(t, c)
	v.stop()
	if err := sameAnnouncements(recv.announcements(), want); err != nil {
		t.Error(err)
	}
}

// wantCount checks that k was announced n times (distinct webhook-ids).
func wantCount(r *receiver, k alertKey, n int) error {
	if got := r.count(k); got != n {
		return fmt.Errorf("%v announced %d times, want %d", k, got, n)
	}
	return nil
}

// sameAnnouncements reports the first announcement whose count differs from
// want, extra ones (an alert announced twice, or one not wanted) first.
func sameAnnouncements(got, want map[alertKey]int) error {
	for k := range got {
		if got[k] > want[k] {
			return fmt.Errorf("%v announced %d times, want %d (all: %v)", k, got[k], want[k], got)
		}
	}
	for k := range want {
		if got[k] != want[k] {
			return fmt.Errorf("%v announced %d times, want %d (all: %v)", k, got[k], want[k], got)
		}
	}
	return nil
}

// waitOutboxEmpty waits until the daemon delivered everything it queued, so
// that no duplicate can still be on its way.
func waitOutboxEmpty(t testing.TB, c *client) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "the notification outbox to drain", testkit.StreamEmpty(c.js, notify.OutboxStream))
}
