package daemon

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestRestartFromACheckpoint stops Vigil half-way through a brute force
// and restarts it after the rest of the attack was stored. Stopping takes
// a checkpoint; the restart restores it and replays nothing, and the
// attack, whose first half only the checkpoint holds, pages once. A checkpoint that does not fit the restarted instance (other
// detect settings, or checkpoints turned off) is not used: the windows are
// rebuilt from the whole lookback, and the attack still pages once.
func TestRestartFromACheckpoint(t *testing.T) {
	cases := []struct {
		name string
		// change alters the second run's config.
		change func(*detect.Config)
		// restored: the second run starts from the checkpoint.
		restored bool
	}{
		{name: "same rules", restored: true},
		{name: "other detect settings", change: func(c *detect.Config) { c.Lateness += time.Second }},
		{name: "checkpoints off", change: func(c *detect.Config) { c.CheckpointEvery = 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, js, got := restartRig(t)
			const ip = "198.51.100.23"

			first := startDaemon(t, cfg)
			attempts(t, js, ip, 0, 4)
			received(t, first, 4)
			first.stop()
			if n := metric(t, first.d.Registry(), "vigil_detection_checkpoints_total"); n < 1 {
				t.Fatal("no checkpoint taken")
			}
			checkpointAt(t, js, 4) // the stop's, or one taken once caught up

			attempts(t, js, ip, 4, 8) // while Vigil is down
			if tc.change != nil {
				tc.change(&cfg.Detect)
			}
			second := startDaemon(t, cfg)
			last := second.d.detector.metrics.last()
			// The second half was not delivered before the restart: it
			// comes live. The rebuild replays the first half, unless the
			// checkpoint holds it.
			wantEvents := 4
			if tc.restored {
				wantEvents = 0
			}
			if last.Events != wantEvents || (last.Checkpoint != nil) != tc.restored {
				t.Errorf("rebuild replayed %d events, from a checkpoint: %v; want %d, %v", last.Events, last.Checkpoint != nil, wantEvents, tc.restored)
			}
			if from := metric(t, second.d.Registry(), "vigil_detection_rebuild_from_checkpoint"); (from == 1) != tc.restored {
				t.Errorf("vigil_detection_rebuild_from_checkpoint = %v, want restored %v", from, tc.restored)
			}
			testkit.WaitFor(t, 10*time.Second, "the attack paged", func() error {
				return equalf(float64(got.count("brute_force_source_ip", ip, detect.TransitionFiring)), 1, "pages")
			})
			received(t, second, 4)
			second.stop()
			if n := got.count("brute_force_source_ip", ip, detect.TransitionFiring); n != 1 {
				t.Errorf("the attack paged %d times, want once", n)
			}
		})
	}
}

// restartRig is a single Vigil's config on a NATS server of its own that
// outlives the daemons a test starts on it, delivering to a webhook whose
// pages it returns.
func restartRig(t *testing.T) (config.Config, jetstream.JetStream, *pages) {
	t.Helper()
	s := testkit.RunNATS(t)
	got := &pages{n: map[string]int{}}
	hook := httptest.NewServer(got)
	t.Cleanup(hook.Close)
	cfg := clusterConfig(t, s.ClientURL(), hook.URL, "", 1, 0)
	cfg.Cluster.Enabled = false
	_, js := connectJS(t, s.ClientURL())
	return cfg, js, got
}

// received waits until r has counted n events.
func received(t *testing.T, r *running, n float64) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, "events applied", func() error {
		return equalf(metric(t, r.d.Registry(), "vigil_events_received_total"), n, "events received")
	})
}

// checkpointAt checks that the stored checkpoint holds the stream up to
// sequence seq.
func checkpointAt(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	if got := storedSeq(t, js); got != seq {
		t.Errorf("checkpoint at sequence %d, want %d", got, seq)
	}
}

// storedSeq returns the stream sequence the stored checkpoint holds.
func storedSeq(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	store, err := js.ObjectStore(t.Context(), CheckpointBucket)
	if err != nil {
		t.Fatalf("checkpoint store: %v", err)
	}
	info, err := store.GetInfo(t.Context(), checkpointObject)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	var ci checkpointInfo
	if err := json.Unmarshal([]byte(info.Metadata[checkpointMetaKey]), &ci); err != nil {
		t.Fatalf("checkpoint metadata: %v", err)
	}
	if info.Size == 0 {
		t.Errorf("empty checkpoint at sequence %d", ci.Mark.Seq)
	}
	return ci.Mark.Seq
}

// TestCheckpointEveryInterval: a running instance checkpoints once it has
// caught up with its first events, then every detect.checkpoint_every on
// its clock, not before, and not when nothing was applied since.
func TestCheckpointEveryInterval(t *testing.T) {
	// Behind the events' time, so that moving it on does not make them
	// late.
	clk := clock.NewFake(time.Now().Add(-10 * time.Minute))
	cfg := testConfig(t)
	cfg.Detect.CheckpointEvery = time.Minute
	// What a checkpoint killed half-way left in data_dir goes at start.
	leftover := filepath.Join(cfg.DataDir, "vigil-snapshot-1234")
	if err := os.MkdirAll(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	r := startDaemonWith(t, cfg, Options{Logger: testLogger(t), Clock: clk})
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a leftover snapshot directory survived the start: %v", err)
	}
	_, js := connectJS(t, r.d.NATSURL())
	checkpoints := func() float64 { return metric(t, r.d.Registry(), "vigil_detection_checkpoints_total") }

	attempts(t, js, "198.51.100.24", 0, 3)
	received(t, r, 3)
	testkit.WaitFor(t, 10*time.Second, "the first checkpoint, once caught up", func() error {
		clk.Advance(time.Second)
		return equalf(checkpoints(), 1, "checkpoints")
	})
	checkpointAt(t, js, 3)
	if at := metric(t, r.d.Registry(), "vigil_detection_checkpoint_timestamp_seconds"); at < float64(clk.Now().Add(-time.Minute).Unix()) {
		t.Errorf("vigil_detection_checkpoint_timestamp_seconds = %v, want about %v", at, clk.Now().Unix())
	}

	// An upload cut off left its chunks; the next checkpoint purges them.
	orphan := "$O." + CheckpointBucket + ".C.cut-off-upload"
	if _, err := js.Publish(t.Context(), orphan, []byte("chunk")); err != nil {
		t.Fatal(err)
	}
	attempts(t, js, "198.51.100.24", 3, 5)
	received(t, r, 5)
	for range 50 {
		clk.Advance(time.Second)
	}
	if n := checkpoints(); n != 1 {
		t.Fatalf("%v checkpoints before the interval, want 1", n)
	}
	testkit.WaitFor(t, 10*time.Second, "a checkpoint after the interval", func() error {
		clk.Advance(time.Second)
		return equalf(checkpoints(), 2, "checkpoints")
	})
	checkpointAt(t, js, 5)
	stream, err := js.Stream(t.Context(), "OBJ_"+CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(orphan))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[orphan]; n != 0 {
		t.Errorf("%d chunks of a cut-off upload left in the bucket", n)
	}

	// Nothing applied since: no checkpoint over another interval, nor
	// when Vigil stops.
	for range 70 {
		clk.Advance(time.Second)
	}
	r.stop()
	if n := checkpoints(); n != 2 {
		t.Errorf("%v checkpoints with nothing applied since the last, want 2", n)
	}
}

// TestUnusableCheckpoint: a checkpoint that cannot be used costs a full
// rebuild, never a failed start or state from elsewhere. A corrupt one is
// refused before the engine changes; one of an events stream since
// deleted and created again is found out after the engine took its state,
// and the instance starts over on a new engine, so the old stream's
// attempts do not count towards the new stream's.
func TestUnusableCheckpoint(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, js jetstream.JetStream)
		// page: the attack's first half is still in the stream, so a
		// rebuild finds it and the second half pages.
		page bool
	}{
		{name: "corrupt", page: true, spoil: func(t *testing.T, js jetstream.JetStream) {
			store, err := js.ObjectStore(t.Context(), CheckpointBucket)
			if err != nil {
				t.Fatal(err)
			}
			info, err := store.GetInfo(t.Context(), checkpointObject)
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, info.Size)
			if _, err := store.PutBytes(t.Context(), checkpointObject, junk); err != nil {
				t.Fatal(err)
			}
			if err := store.UpdateMeta(t.Context(), checkpointObject, info.ObjectMeta); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a chunk lost", page: true, spoil: func(t *testing.T, js jetstream.JetStream) {
			stream, err := js.Stream(t.Context(), "OBJ_"+CheckpointBucket)
			if err != nil {
				t.Fatal(err)
			}
			for seq := stream.CachedInfo().State.FirstSeq; ; seq++ {
				m, err := stream.GetMsg(t.Context(), seq)
				if err != nil {
					t.Fatalf("no chunk of the checkpoint found: %v", err)
				}
				if strings.HasPrefix(m.Subject, "$O."+CheckpointBucket+".C.") {
					if err := stream.DeleteMsg(t.Context(), seq); err != nil {
						t.Fatal(err)
					}
					return
				}
			}
		}},
		{name: "another events stream", spoil: func(t *testing.T, js jetstream.JetStream) {
			if err := js.DeleteStream(t.Context(), ingest.EventsStream); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, js, got := restartRig(t)
			const ip = "198.51.100.25"

			first := startDaemon(t, cfg)
			attempts(t, js, ip, 0, 4)
			received(t, first, 4)
			first.stop()
			tc.spoil(t, js)

			second := startDaemon(t, cfg)
			if last := second.d.detector.metrics.last(); last.Checkpoint != nil {
				t.Errorf("the restart used the checkpoint taken at %s", last.Checkpoint)
			}
			attempts(t, js, ip, 4, 8)
			received(t, second, 4)
			want := 0
			if tc.page {
				want = 1
				testkit.WaitFor(t, 10*time.Second, "the attack paged", func() error {
					return equalf(float64(got.count("brute_force_source_ip", ip, detect.TransitionFiring)), 1, "pages")
				})
			}
			second.stop()
			if n := got.count("brute_force_source_ip", ip, detect.TransitionFiring); n != want {
				t.Errorf("the attack paged %d times, want %d", n, want)
			}
		})
	}
}

// TestCheckpointEveryKeepsTheEngine: how often detection is checkpointed
// is no detection setting. A reload that changes only it keeps the engine
// (no rebuild), and the checkpoints taken before still fit; a detection
// setting changes the digest.
func TestCheckpointEveryKeepsTheEngine(t *testing.T) {
	x := &detector{detectorDeps: detectorDeps{clock: clock.Real{}, log: testLogger(t)}}
	digest := func(change func(*detect.Config)) string {
		cfg := detect.DefaultConfig()
		change(&cfg)
		st, err := x.build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.engine.Close()
		return st.digest
	}
	base := digest(func(*detect.Config) {})
	if d := digest(func(c *detect.Config) { c.CheckpointEvery = time.Hour }); d != base {
		t.Errorf("checkpoint_every changed the rule set's digest")
	}
	if d := digest(func(c *detect.Config) { c.Lateness = time.Second }); d == base {
		t.Errorf("detect.lateness left the rule set's digest unchanged")
	}
}

// TestCrashAfterACheckpoint: Vigil checkpoints after 2 attempts of a brute
// force, applies 2 more, and stops before its next checkpoint without one
// of its own, as a crash would (what a crash leaves unacknowledged is
// ingest's TestResumeFromACheckpoint). The restart
// restores the checkpoint and replays the 2 applied after it, so the
// window counts 4 again, not 2 (attempts lost) nor 6 (attempts counted
// twice): brute_force_source_ip, which fires on 5 within 12 s, pages with
// the 5th attempt, and only then.
func TestCrashAfterACheckpoint(t *testing.T) {
	cfg, js, got := restartRig(t)
	cfg.Detect.CheckpointEvery = time.Minute
	const ip = "198.51.100.26"
	// Behind the events' time, so that moving it on to the checkpoint
	// does not make the attempts late.
	clk := clock.NewFake(time.Now().Add(-5 * time.Minute))
	pages := func() int { return got.count("brute_force_source_ip", ip, detect.TransitionFiring) }

	first := startDaemonWith(t, cfg, Options{Logger: testLogger(t), Clock: clk})
	attempts(t, js, ip, 0, 2)
	received(t, first, 2)
	testkit.WaitFor(t, 10*time.Second, "a checkpoint", func() error {
		clk.Advance(time.Second)
		return equalf(metric(t, first.d.Registry(), "vigil_detection_checkpoints_total"), 1, "checkpoints")
	})
	attempts(t, js, ip, 2, 4)
	received(t, first, 4)
	// Dies before its next checkpoint: nor does it take one as it stops.
	first.d.detector.checkpointEvery.Store(0)
	first.stop()
	checkpointAt(t, js, 2)

	second := startDaemonWith(t, cfg, Options{Logger: testLogger(t), Clock: clk})
	last := second.d.detector.metrics.last()
	if last.Checkpoint == nil || last.Events != 2 {
		t.Fatalf("the restart replayed %d events, from a checkpoint: %v; want the 2 after the checkpoint", last.Events, last.Checkpoint != nil)
	}
	waitSettled(t, second, clk)
	pagesWithTheFifth(t, js, ip, pages)
}

// TestClusterStandbyStartsFromACheckpoint: a member that restarts as a
// standby restores the active member's checkpoint, replays what the active
// member applied after it, follows on, and detects from there once it
// takes over: the attack straddling the checkpoint and the restart pages
// once, with its 5th attempt.
func TestClusterStandbyStartsFromACheckpoint(t *testing.T) {
	s := testkit.RunNATS(t)
	rec := &pages{n: map[string]int{}}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	cfgs := []config.Config{
		clusterConfig(t, s.ClientURL(), hook.URL, "a", 1, 2*time.Second),
		clusterConfig(t, s.ClientURL(), hook.URL, "b", 1, 2*time.Second),
	}
	members := []*running{startDaemon(t, cfgs[0]), startDaemon(t, cfgs[1])}
	_, js := testkit.Connect(t, s)
	const ip = "198.51.100.27"
	pages := func() int { return rec.count("brute_force_source_ip", ip, detect.TransitionFiring) }

	attempts(t, js, ip, 0, 2)
	active := activeMember(t, members)
	standby := 1 - active
	testkit.WaitFor(t, 10*time.Second, "the active member applied the attempts", func() error {
		return equalf(metric(t, members[active].d.Registry(), "vigil_events_received_total"), 2, "events received")
	})
	if err := members[active].d.detector.checkpoint(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	checkpointAt(t, js, 2)

	// The standby stops without a checkpoint of its own; 2 attempts more
	// come meanwhile.
	members[standby].d.detector.checkpointEvery.Store(0)
	members[standby].stop()
	attempts(t, js, ip, 2, 4)
	testkit.WaitFor(t, 10*time.Second, "the active member applied the attempts", func() error {
		return equalf(metric(t, members[active].d.Registry(), "vigil_events_received_total"), 4, "events received")
	})
	members[standby] = startDaemon(t, cfgs[standby])
	if last := members[standby].d.detector.metrics.last(); last.Checkpoint == nil || last.Events != 2 {
		t.Fatalf("the standby's start replayed %d events, from a checkpoint: %v; want the 2 after it", last.Events, last.Checkpoint != nil)
	}

	// The active member leaves; the standby takes over and counts 4.
	members[active].d.detector.checkpointEvery.Store(0)
	members[active].stop()
	if got := activeMember(t, members, active); got != standby {
		t.Fatalf("member %d active, want the restarted standby %d", got, standby)
	}
	pagesWithTheFifth(t, js, ip, pages)
}

// pagesWithTheFifth checks that a brute force from ip four attempts in has
// not paged (none counted twice), then that its 5th attempt pages it once:
// brute_force_source_ip fires on 5 within 12 s.
func pagesWithTheFifth(t *testing.T, js jetstream.JetStream, ip string, pages func() int) {
	t.Helper()
	if n := pages(); n != 0 {
		t.Fatalf("the attack paged after 4 attempts (%d pages): attempts were counted twice", n)
	}
	attempts(t, js, ip, 4, 5)
	testkit.WaitFor(t, 10*time.Second, "the 5th attempt paged", func() error {
		return equalf(float64(pages()), 1, "pages")
	})
}

// TestCheckpointAfterAReload: a reload that changes detection puts an
// engine in force that the stored checkpoint no longer fits; stopping then
// stores the new engine's, though no event came since, and the restart
// restores it.
func TestCheckpointAfterAReload(t *testing.T) {
	cfg, js, _ := restartRig(t)
	next := cfg
	next.Detect.Lateness = cfg.Detect.Lateness + time.Second
	load := func() (config.Config, []byte, error) { return next, []byte("next"), next.Validate() }
	first := startDaemonWith(t, cfg, Options{Logger: testLogger(t), Load: load})
	attempts(t, js, "198.51.100.28", 0, 2)
	received(t, first, 2)
	// errNothingNew: the instance took it itself once caught up.
	if err := first.d.detector.checkpoint(t.Context(), false); err != nil && !errors.Is(err, errNothingNew) {
		t.Fatal(err)
	}
	checkpointAt(t, js, 2)
	if err := first.d.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	first.stop()

	second := startDaemonWith(t, next, Options{Logger: testLogger(t)})
	if last := second.d.detector.metrics.last(); last.Checkpoint == nil {
		t.Error("the restart with the reloaded settings did not restore a checkpoint")
	}
}
