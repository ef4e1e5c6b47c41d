package daemon

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// BenchmarkRestart measures what a restart costs with and without a
// checkpoint, on one NATS server that outlives the daemons. A daemon
// applies a backlog of VIGIL_BENCH_EVENTS events (default 1,000,000) and
// stops, which checkpoints its engine; a tenth as many events more are
// stored while it is down. Then, in the same iteration:
//
//   - restored-s: a daemon starts from the checkpoint and replays the
//     events stored after it (it then applies them, and stops);
//   - rebuilt-s: a daemon with checkpoints off rebuilds from the stream,
//     replaying every event of the rules' lookback.
//
// Both are the daemon's own record of its rebuild (vigil_detection_rebuild_seconds),
// from the start of Run to the windows being ready. It also reports the
// checkpoint's size and how long taking it paused intake. Run with
// -benchtime 1x.
func BenchmarkRestart(b *testing.B) {
	n := tputEvents()
	for range b.N {
		benchRestart(b, n)
	}
}

func benchRestart(b *testing.B, n int) {
	s := testkit.RunNATS(b)
	ctx := context.Background()
	_, js := connectJS(b, s.ClientURL())
	if err := ingest.EnsureStreams(ctx, js, ingest.DefaultConfig(), 1); err != nil {
		b.Fatal(err)
	}
	last := tputPrefill(b, js, 0, tputMessages(1, n))
	cfg := tputConfig(b)
	cfg.NATS.URL = s.ClientURL()

	first := restartDaemon(b, cfg, js, last)
	bytes := metric(b, first.Registry(), "vigil_detection_checkpoint_bytes")
	pause := metric(b, first.Registry(), "vigil_detection_checkpoint_pause_seconds")
	if metric(b, first.Registry(), "vigil_detection_checkpoints_total") < 1 {
		b.Fatal("no checkpoint taken")
	}
	last = tputPrefill(b, js, last, tputMessages(2, n/10))
	restored := restartDaemon(b, cfg, js, last)
	if restored.detector.metrics.last().Checkpoint == nil {
		b.Fatal("the restart did not restore the checkpoint")
	}
	cfg.Detect.CheckpointEvery = 0
	rebuilt := restartDaemon(b, cfg, js, last)

	b.ReportMetric(restored.detector.metrics.last().Seconds, "restored-s")
	b.ReportMetric(float64(restored.detector.metrics.last().Events), "restored-events")
	b.ReportMetric(rebuilt.detector.metrics.last().Seconds, "rebuilt-s")
	b.ReportMetric(float64(rebuilt.detector.metrics.last().Events), "rebuilt-events")
	b.ReportMetric(bytes/(1<<20), "checkpoint-MiB")
	b.ReportMetric(pause*1000, "pause-ms")
}

// restartDaemon runs a daemon on cfg until it has rebuilt its windows and
// acknowledged the events stream up to sequence last, then stops it and
// returns it.
func restartDaemon(b *testing.B, cfg config.Config, js jetstream.JetStream, last uint64) *Daemon {
	d, err := New(context.Background(), cfg, Options{Version: "bench", Stdout: io.Discard, Logger: tputLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testkit.WaitFor(b, 10*time.Minute, "the rebuild done", d.Ready)
	testkit.WaitFor(b, 10*time.Minute, "the stream acknowledged", func() error {
		info, err := js.Consumer(context.Background(), ingest.EventsStream, cfg.Ingest.Consumer)
		if err != nil {
			return err
		}
		ci, err := info.Info(context.Background())
		if err != nil {
			return err
		}
		return equalf(float64(ci.AckFloor.Stream), float64(last), "acknowledged")
	})
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return d
}
