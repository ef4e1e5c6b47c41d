package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/privacy"
)

// Checkpoints of detection state. Every detect.checkpoint_every, the
// instance that applies live events (the only one, or a cluster's active
// member) pauses intake, snapshots its engine (detect.Engine.Snapshot)
// with the stream sequence it has applied up to (ingest.Mark), and stores
// both as one object in a JetStream object store. At start, an instance
// restores the latest checkpoint that fits its rules, its
// pseudonymisation and the events stream, and replays only the events
// stored after it (ingest.Consumer.Resume) instead of the rules' whole
// lookback. A checkpoint that does not fit (other rules, another stream,
// older than the lookback, unreadable) is skipped, saying why, and the
// windows are rebuilt from the stream as without checkpoints.

// CheckpointBucket is the object store that holds checkpoints.
const CheckpointBucket = "VIGIL_CHECKPOINTS"

// checkpointObject is the checkpoint's name in CheckpointBucket: there is
// one, replaced by each new checkpoint.
const checkpointObject = "detection"

// checkpointProbe is the object openCheckpoints stores and deletes to
// find out whether Vigil may write the bucket; probeTimeout bounds it.
const (
	checkpointProbe = "probe"
	probeTimeout    = 5 * time.Second
)

// checkpointMetaKey is the object's metadata entry that holds its
// checkpointInfo, as JSON.
const checkpointMetaKey = "vigil-checkpoint"

// checkpointFormat numbers checkpointInfo's form.
const checkpointFormat = 1

// checkpointInfo says what a checkpoint holds and when it fits.
type checkpointInfo struct {
	Format int `json:"format"`
	// Rules is the digest of the rule set in force (engineState.digest).
	Rules string `json:"rules"`
	// Privacy names the pseudonymisation of the alerts' labels.
	Privacy string      `json:"privacy"`
	Mark    ingest.Mark `json:"mark"`
	Version string      `json:"version"`
}

// privacyID names what p pseudonymises and under which key, without the
// key: the key's short fingerprint.
func privacyID(p *privacy.Pseudonymizer) string {
	return fmt.Sprintf("%s/%t/%t", p.KeyID(), p.Enabled(privacy.FieldSourceIP), p.Enabled(privacy.FieldUser))
}

// checkpointStore keeps checkpoints in CheckpointBucket; dir holds the
// files a checkpoint goes through on its way (data_dir: a container's
// /tmp may be small).
type checkpointStore struct {
	js      jetstream.JetStream
	store   jetstream.ObjectStore
	dir     string
	version string
	metrics *checkpointMetrics
}

type checkpointMetrics struct {
	written, failed prometheus.Counter
	bytes, pause    prometheus.Gauge
	last            prometheus.Gauge
	unavailable     prometheus.Gauge
}

func newCheckpointMetrics(reg prometheus.Registerer) *checkpointMetrics {
	m := &checkpointMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_detection_checkpoints_total",
			Help: "Checkpoints of detection state stored in JetStream."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_detection_checkpoint_failures_total",
			Help: "Checkpoints of detection state that could not be taken or stored (see the log)."}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_checkpoint_bytes",
			Help: "Size of the last checkpoint of detection state stored."}),
		pause: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_checkpoint_pause_seconds",
			Help: "How long the last checkpoint paused intake while the engine was snapshotted."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_checkpoint_timestamp_seconds",
			Help: "When the last checkpoint of detection state stored was taken (Unix seconds, Vigil's clock); 0 before the first."}),
		unavailable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_detection_checkpoints_unavailable",
			Help: "1 when detect.checkpoint_every is on but Vigil cannot store checkpoints (the log says why, at start), else 0."}),
	}
	reg.MustRegister(m.written, m.failed, m.bytes, m.pause, m.last, m.unavailable)
	return m
}

// openCheckpoints creates or binds CheckpointBucket.
func openCheckpoints(ctx context.Context, js jetstream.JetStream, replicas int, dir, version string, m *checkpointMetrics) (*checkpointStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s cannot be created for the files checkpoints go through: %w; choose a directory Vigil may write with --data-dir (config: data_dir), or set detect.checkpoint_every: 0s", dir, err)
	}
	removeLeftovers(dir)
	store, err := natsconn.EnsureObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      CheckpointBucket,
		Description: "Vigil detection state checkpoints (detect.checkpoint_every)",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create object store %s for detection checkpoints: %w; check that JetStream has room for it (nats.replicas file-backed copies of about one checkpoint), or set detect.checkpoint_every: 0s", CheckpointBucket, err)
	}
	// A publish the server refuses is only logged, and an upload waits
	// for its acknowledgements until its deadline: found out now, not at
	// every checkpoint and when Vigil stops.
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := store.PutBytes(pctx, checkpointProbe, nil); err != nil {
		return nil, fmt.Errorf("store a test object in %s: %w; allow Vigil's NATS user to publish on $O.> (see deploy/nats), or set detect.checkpoint_every: 0s", CheckpointBucket, err)
	}
	_ = store.Delete(pctx, checkpointProbe)
	return &checkpointStore{js: js, store: store, dir: dir, version: version, metrics: m}, nil
}

// leftoverPatterns name the files a checkpoint, a snapshot and a restore
// go through in data_dir; a crash while one was written leaves it behind.
var leftoverPatterns = []string{"checkpoint-*", "vigil-snapshot-*", "vigil-restore-*"}

// removeLeftovers removes what a crashed checkpoint or restore left in
// dir: detection state, with real addresses and user names, that nothing
// would otherwise delete. Only this Vigil uses its data_dir.
func removeLeftovers(dir string) {
	for _, p := range leftoverPatterns {
		matches, _ := filepath.Glob(filepath.Join(dir, p))
		for _, f := range matches {
			_ = os.RemoveAll(f)
		}
	}
}

// sweep purges the chunks no object refers to: those of an upload cut off
// (a stop, a lost connection) or overwritten while in flight. The bucket
// holds one object, whose chunks are under nuid.
func (c *checkpointStore) sweep(ctx context.Context, nuid string) error {
	stream, err := c.js.Stream(ctx, "OBJ_"+CheckpointBucket)
	if err != nil {
		return err
	}
	chunks := "$O." + CheckpointBucket + ".C."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(chunks+">"))
	if err != nil {
		return err
	}
	for subject := range info.State.Subjects {
		if subject != chunks+nuid {
			if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshot is what a checkpoint holds: the state of st's engine, which has
// applied the stream up to mark, written in bytes while intake paused for
// paused.
type snapshot struct {
	st     *engineState
	mark   ingest.Mark
	bytes  int64
	paused time.Duration
}

// put stores a checkpoint: take writes the engine's state to the file it
// is given, while intake is paused; the upload comes after.
func (c *checkpointStore) put(ctx context.Context, take func(io.Writer) (snapshot, error)) (snapshot, error) {
	f, err := c.tempFile()
	if err != nil {
		return snapshot{}, err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	defer f.Close()
	snap, err := take(f)
	if err != nil {
		return snap, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return snap, err
	}
	meta, err := json.Marshal(checkpointInfo{Format: checkpointFormat, Rules: snap.st.digest, Privacy: privacyID(snap.st.privacy), Mark: snap.mark, Version: c.version})
	if err != nil {
		return snap, err
	}
	info, err := c.store.Put(ctx, jetstream.ObjectMeta{
		Name: checkpointObject, Description: "detection state and the events stream sequence it holds",
		Metadata: map[string]string{checkpointMetaKey: string(meta)},
	}, f)
	if err != nil {
		return snap, fmt.Errorf("store the checkpoint in %s: %w", CheckpointBucket, err)
	}
	if err := c.sweep(ctx, info.NUID); err != nil {
		return snap, fmt.Errorf("checkpoint stored, but chunks of earlier uploads not purged from %s: %w", CheckpointBucket, err)
	}
	c.metrics.written.Inc()
	c.metrics.bytes.Set(float64(snap.bytes))
	c.metrics.pause.Set(snap.paused.Seconds())
	c.metrics.last.Set(float64(snap.mark.Taken.UnixNano()) / 1e9)
	return snap, nil
}

// tempFile creates a file for a checkpoint on its way, in data_dir (see
// leftoverPatterns); the caller removes it.
func (c *checkpointStore) tempFile() (*os.File, error) {
	f, err := os.CreateTemp(c.dir, "checkpoint-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file in data_dir %s: %w", c.dir, err)
	}
	return f, nil
}

// errNoCheckpoint: nothing to restore, for a reason worth logging.
type errNoCheckpoint struct{ why string }

func (e errNoCheckpoint) Error() string { return e.why }

// get opens the checkpoint if it fits st and was taken after since: the
// caller restores the engine from the returned file, then removes it.
func (c *checkpointStore) get(ctx context.Context, st *engineState, since time.Time) (*os.File, checkpointInfo, error) {
	var info checkpointInfo
	obj, err := c.store.Get(ctx, checkpointObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, info, errNoCheckpoint{"no checkpoint stored yet"}
	}
	if err != nil {
		return nil, info, fmt.Errorf("read the checkpoint from %s: %w", CheckpointBucket, err)
	}
	defer obj.Close()
	oi, err := obj.Info()
	if err != nil {
		return nil, info, fmt.Errorf("read the checkpoint from %s: %w", CheckpointBucket, err)
	}
	if err := json.Unmarshal([]byte(oi.Metadata[checkpointMetaKey]), &info); err != nil || info.Format != checkpointFormat {
		return nil, info, errNoCheckpoint{"the checkpoint is of another format, or its description is unreadable"}
	}
	switch {
	case info.Rules != st.digest:
		return nil, info, errNoCheckpoint{"the checkpoint was taken with other rules, lists or detect settings"}
	case info.Privacy != privacyID(st.privacy):
		return nil, info, errNoCheckpoint{"the checkpoint was taken with another privacy key or other pseudonymised fields"}
	case info.Mark.Taken.Before(since):
		return nil, info, errNoCheckpoint{fmt.Sprintf("the checkpoint was taken at %s, before the rules' lookback", info.Mark.Taken.Format(time.RFC3339))}
	}
	f, err := c.tempFile()
	if err != nil {
		return nil, info, err
	}
	// The object store checks the object's digest as its end is read: an
	// object read in full is the one stored.
	_, err = io.Copy(f, obj)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, info, fmt.Errorf("read the checkpoint from %s: %w", CheckpointBucket, err)
	}
	return f, info, nil
}

// restore puts the stored checkpoint that fits st into st's muted engine
// and replays the events after it. On an error (errNoCheckpoint when there
// was none to use), touched says whether the engine had taken the
// checkpoint's state: the caller then rebuilds on a new engine, else on
// this one.
func (x *detector) restore(ctx context.Context, st *engineState, since time.Time) (r ingest.Replayed, info checkpointInfo, touched bool, err error) {
	f, info, err := x.checkpoints.get(ctx, st, since)
	if err != nil {
		return r, info, false, err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	defer f.Close()
	if err := st.engine.Restore(f); err != nil {
		return r, info, false, err
	}
	err = muted(st.engine, func() (err error) {
		r, err = x.stream.Resume(ctx, since, info.Mark, st.engine)
		return err
	})
	return r, info, true, err
}

// checkpointLoop takes a checkpoint on the instance that applies live
// events, once ingest has caught up: on a single instance the first as
// soon as something was applied (so that a crash soon after a long rebuild
// does not repeat it), on a cluster member an interval after it became
// active; then every detect.checkpoint_every (as reloaded), unless nothing
// was applied since the last.
func (x *detector) checkpointLoop(ctx context.Context) {
	if x.checkpoints == nil {
		return
	}
	ticker, tick := x.clock.NewTicker(time.Second)
	defer ticker.Stop()
	var last time.Time
	wasActive := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if fo := x.member; fo != nil {
			active := fo.isActive()
			if active && !wasActive {
				// A member that becomes active waits an interval: the
				// member it took over from stored one as it stopped, and
				// two uploads of one object at once leave one's chunks
				// behind (swept at the next checkpoint).
				last = x.clock.Now()
			}
			if wasActive = active; !active {
				continue // the active member's checkpoints hold what standbys follow
			}
		}
		every := time.Duration(x.checkpointEvery.Load())
		if every == 0 || !last.IsZero() && x.clock.Now().Sub(last) < every {
			continue
		}
		if !x.stream.CaughtUp() {
			continue // a backlog first: it is replayed after a restart anyway
		}
		if err := x.checkpoint(ctx, false); !errors.Is(err, errNothingNew) {
			last = x.clock.Now() // stored, or failed: retried at the next interval
		}
	}
}

// errNothingNew: no event was applied since the last checkpoint stored
// (or none at all), so none is taken.
var errNothingNew = errors.New("no event applied since the last checkpoint")

// errNotActive: the member stopped being the active one before its
// checkpoint was taken.
var errNotActive = errors.New("this member is no longer the active one")

// checkpoint takes and stores one checkpoint, logging a failure. Unless
// stopping (intake and a standby's following have ended), a cluster member
// takes it only while active, holding the failover lock so that following
// cannot change the engine past the mark while it is snapshotted.
func (x *detector) checkpoint(ctx context.Context, stopping bool) error {
	// Quiet since the last checkpoint (or since the start): no file, no
	// pause. What the consumer applied live is enough to tell.
	if live := x.stream.Position(ingest.Replayed{}).Last; live == 0 || live <= x.stored.Load() {
		return errNothingNew
	}
	start := x.clock.Now()
	snap, err := x.checkpoints.put(ctx, func(w io.Writer) (snap snapshot, err error) {
		x.stream.Paused(func() {
			r := x.replayed
			if fo := x.member; fo != nil {
				fo.mu.Lock()
				defer fo.mu.Unlock()
				if !stopping && !fo.isActive() {
					err = errNotActive
					return
				}
				r = fo.r
			}
			snap.st = x.state.Load()
			snap.mark = x.stream.Position(r).Mark(x.clock.Now())
			if snap.mark.Seq == 0 || snap.mark.Seq == x.stored.Load() {
				err = errNothingNew
				return
			}
			snap.bytes, err = snap.st.engine.Snapshot(w)
			snap.paused = x.clock.Now().Sub(start)
		})
		return snap, err
	})
	switch {
	case errors.Is(err, errNothingNew), errors.Is(err, errNotActive):
		return err
	case err != nil && ctx.Err() != nil:
		return err // stopping: the next start replays a little more
	case err != nil:
		x.checkpoints.metrics.failed.Inc()
		x.log.Warn("detection state not checkpointed: a restart replays the stream from the last checkpoint stored, or the rules' whole lookback", "err", err)
		return err
	}
	x.stored.Store(snap.mark.Seq)
	x.log.Debug("detection state checkpointed", "seq", snap.mark.Seq, "bytes", snap.bytes, "paused", snap.paused, "took", x.clock.Now().Sub(start))
	return nil
}

// setCheckpointEvery puts a reloaded detect.checkpoint_every in force.
// Checkpoints turned off at start stay off until a restart: the store is
// opened at start.
func (x *detector) setCheckpointEvery(every time.Duration) {
	if every != 0 && x.checkpoints == nil {
		x.log.Warn("detect.checkpoint_every turns checkpoints on only at the next start (they were off, or their store could not be opened, when Vigil started)")
	}
	x.checkpointEvery.Store(int64(every))
}

// detectionSettings is cfg without what does not change detection (how
// often it is checkpointed), for the digest of the rule set in force: a
// reload that changes only that keeps the engine, and checkpoints still
// fit.
func detectionSettings(cfg detect.Config) detect.Config {
	cfg.CheckpointEvery = 0
	return cfg
}

// lastCheckpointTimeout bounds the checkpoint taken when Vigil stops, so
// that a stop stays well within a container's grace period.
const lastCheckpointTimeout = 5 * time.Second

// lastCheckpoint takes a checkpoint as Vigil stops, after intake stopped,
// so that the next start replays only what comes after. Run calls it on a
// single instance and on the cluster member that was active: one writer
// at a time, as two uploads of one object at once can leave the chunks of
// one behind in the bucket.
func (x *detector) lastCheckpoint() {
	if x.checkpoints == nil || x.checkpointEvery.Load() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lastCheckpointTimeout)
	defer cancel()
	_ = x.checkpoint(ctx, true) // logged
}
