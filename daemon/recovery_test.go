package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
)

// TestRestartWithConsumerStateBehind restarts the daemon after its durable
// consumer lost track of what it had processed, as after a kill -9 of a
// daemon whose embedded NATS server had not yet written the consumer's
// state to disk (here: the consumer is deleted, the extreme case). The
// events behind an alert that was announced then come again as new ones.
// The alert must be neither resolved at start (the rebuilt windows do not
// hold those events yet) nor announced a second time when they re-fire it.
func TestRestartWithConsumerStateBehind(t *testing.T) {
	cfg := testConfig(t)
	cfg.NATS.Listen = "127.0.0.1:" + freePort(t)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	var first testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &first})
	publishAttack(t, r.d.NATSURL(), 60)
	testkit.WaitFor(t, 15*time.Second, "the brute-force alert", func() error {
		if !strings.Contains(first.String(), `"rule":"brute_force_source_ip"`) {
			return fmt.Errorf("no brute_force_source_ip alert yet")
		}
		return nil
	})
	r.stop()

	forgetConsumer(t, cfg.NATS, cfg.DataDir)

	var second testkit.SyncBuffer
	clk := clock.NewFake(time.Now())
	r = startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &second, Clock: clk})
	testkit.WaitFor(t, 15*time.Second, "the events re-applied", func() error {
		return equalf(metric(t, r.d.Registry(), "vigil_events_received_total"), 60, "events received again")
	})
	waitSettled(t, r, clk)
	_, js := connectJS(t, r.d.NATSURL())
	testkit.WaitFor(t, 15*time.Second, "the notification outbox to drain", testkit.StreamEmpty(js, notify.OutboxStream))
	if strings.Contains(second.String(), "brute_force_source_ip") {
		t.Errorf("the alert was announced again after the restart:\n%s", second.String())
	}
	firing := r.d.detector.engine().Firing()
	if len(firing) == 0 {
		t.Errorf("the re-applied events did not make the alert fire in the engine")
	}
}

// forgetConsumer deletes the durable ingest consumer from the embedded
// server's store while no daemon runs.
func forgetConsumer(t *testing.T, nc natsconn.Config, dataDir string) {
	t.Helper()
	ns, err := natsconn.StartEmbedded(nc, dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	conn, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, ingest.EventsStream, ingest.DefaultConfig().Consumer); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
}
