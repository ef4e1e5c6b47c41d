package ingest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pinnedMsg is a delivered message as checkPin sees it: its pin header,
// and whether it was handed back.
type pinnedMsg struct {
	jetstream.Msg
	h     nats.Header
	naked bool
}

func (m *pinnedMsg) Headers() nats.Header { return m.h }
func (m *pinnedMsg) Nak() error           { m.naked = true; return nil }

func underPin(pin string) *pinnedMsg {
	return &pinnedMsg{h: nats.Header{pinHeader: []string{pin}}}
}

// TestPinChanges: the server may pin this instance again under a new id
// before the refusal of its old one is handled; the instance must end up
// active under the new pin, demoted once from the old, and the late
// refusal must not demote it.
func TestPinChanges(t *testing.T) {
	var promotions, demotions int
	c := &Consumer{log: slog.New(slog.DiscardHandler), failover: &Failover{
		Promote: func(context.Context) error { promotions++; return nil },
		Demote:  func() { demotions++ },
	}}
	c.fo.ctx = t.Context()
	check := func(pin string, want bool) *pinnedMsg {
		t.Helper()
		m := underPin(pin)
		c.batchMu.Lock()
		got := c.checkPin(m)
		c.batchMu.Unlock()
		if got != want {
			t.Fatalf("a message under %s: decode = %v, want %v", pin, got, want)
		}
		return m
	}
	expect := func(what string, p, d int, held string) {
		t.Helper()
		if promotions != p || demotions != d || c.fo.held() != held {
			t.Fatalf("%s: %d promotions, %d demotions, pin %q; want %d, %d, %q", what, promotions, demotions, c.fo.held(), p, d, held)
		}
	}
	check("p1", true)
	check("p1", true)
	expect("pinned", 1, 0, "p1")

	refused := c.fo.held() // a pull under p1 refused...
	check("p2", true)      // ...but p2's messages come first
	expect("pinned again", 2, 1, "p2")
	c.lostPin(refused)
	expect("the late refusal of p1", 2, 1, "p2")

	if m := check("p1", false); !m.naked {
		t.Error("a message under the lost pin was neither decoded nor handed back")
	}
	c.lostPin("p2")
	expect("p2 refused", 2, 2, "")
}

// TestLastAppliedOnlyRises: a chunk may end with messages delivered again
// that are older than the rest.
func TestLastAppliedOnlyRises(t *testing.T) {
	var c Consumer
	c.noteApplied([]uint64{1001, 1050, 1100})
	c.noteApplied([]uint64{901, 1000})
	if got := c.lastApplied.Load(); got != 1100 {
		t.Fatalf("lastApplied = %d, want 1100", got)
	}
	if r := c.Position(Replayed{Last: 1200}); r.Last != 1200 {
		t.Fatalf("Position after a longer replay = %d, want 1200", r.Last)
	}
}

// On a cluster the events consumer's ack_wait is at most failover_after:
// what a crashed active member was delivered comes back to its successor
// as soon as the pin can move, not after the 30 s default.
func TestClusterAckWaitIsAtMostFailoverAfter(t *testing.T) {
	cfg := DefaultConfig()
	cases := []struct {
		ackWait time.Duration
		fo      *Failover
		want    time.Duration
	}{
		{30 * time.Second, nil, 30 * time.Second},
		{30 * time.Second, &Failover{After: 10 * time.Second}, 10 * time.Second},
		{5 * time.Second, &Failover{After: 10 * time.Second}, 5 * time.Second},
	}
	for _, c := range cases {
		cfg.AckWait = c.ackWait
		if got := consumerConfig(cfg, c.fo).AckWait; got != c.want {
			t.Errorf("ack_wait %s, failover %+v: consumer AckWait %s, want %s", c.ackWait, c.fo, got, c.want)
		}
	}
}
