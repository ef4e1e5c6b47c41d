package detect_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/detect"
)

// mergeSnapshot returns a snapshot of an engine with opts fed the first
// half of mergeEvents, alerts firing.
func mergeSnapshot(t testing.TB, opts detect.Options) []byte {
	t.Helper()
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	evs := mergeEvents(t)
	for i := range len(evs) / 3 {
		e.Process(&evs[i])
	}
	if len(e.Firing()) == 0 {
		t.Fatal("no alert fires at the snapshot")
	}
	var buf bytes.Buffer
	if _, err := e.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reseal replaces a snapshot's SHA-256 trailer with that of its contents.
func reseal(b []byte) []byte {
	if len(b) < sha256.Size {
		return b
	}
	out := slices.Clone(b[:len(b)-sha256.Size])
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// rewrite replaces a snapshot's options and state sections with what
// change makes of them, and reseals it.
func rewrite(snap []byte, change func(meta, state []byte) ([]byte, []byte)) []byte {
	head := len("VIGILSNP") + 1
	metaLen, n := binary.Uvarint(snap[head:])
	meta := snap[head+n : head+n+int(metaLen)]
	rest := snap[head+n+int(metaLen):]
	stateLen, m := binary.Uvarint(rest)
	state := rest[m : m+int(stateLen)]
	meta, state = change(meta, state)
	out := append(slices.Clone(snap[:head]), binary.AppendUvarint(nil, uint64(len(meta)))...)
	out = append(append(out, meta...), binary.AppendUvarint(nil, uint64(len(state)))...)
	out = append(append(out, state...), rest[m+int(stateLen):]...)
	return reseal(out)
}

// withStateMemory rewrites the state memory a snapshot's options record.
func withStateMemory(snap []byte, mem uint64) []byte {
	return rewrite(snap, func(meta, state []byte) ([]byte, []byte) {
		_, n := binary.Uvarint(meta)
		return append(binary.AppendUvarint(nil, mem), meta[n:]...), state
	})
}

// emptyAndUsable checks that e holds no state and then detects as a new
// engine does.
func emptyAndUsable(t *testing.T, e *detect.Engine, out *[]detect.Alert, rs []*detect.Rule, opts detect.Options) {
	t.Helper()
	if len(e.Firing()) != 0 || !e.Watermark().IsZero() {
		t.Fatalf("the engine has %d firing alerts and watermark %v after a failed restore", len(e.Firing()), e.Watermark())
	}
	var want []detect.Alert
	fresh := newSnapEngine(t, rs, opts, &want)
	for _, ev := range mergeEvents(t) {
		e.Process(&ev)
		fresh.Process(&ev)
	}
	if len(want) == 0 {
		t.Fatal("the scenario raised no alert")
	}
	sameAlerts(t, "after a failed restore", *out, want)
}

// TestRestoreRefuses checks that Restore refuses a snapshot of other rules
// or options, or one that is truncated or corrupt, saying why, and leaves
// the engine empty and usable.
func TestRestoreRefuses(t *testing.T) {
	base := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	good := mergeSnapshot(t, base)
	big := base
	big.StateMemory = 256 << 20 // a cache of two chunks per bucket; 32 and 64 MiB have one
	bigSnap := mergeSnapshot(t, big)
	otherRules := func(t testing.TB) []*detect.Rule {
		rs, err := detect.ParseRules("merge.yaml", []byte(strings.Replace(mergeYAML, "count: 5", "count: 6", 1)))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	tests := []struct {
		name     string
		snap     []byte
		rules    func(testing.TB) []*detect.Rule
		opts     func(*detect.Options)
		mismatch bool
		msg      string
	}{
		{name: "a changed rule", snap: good, rules: otherRules, mismatch: true, msg: `rule "address_failures" has changed`},
		{name: "a rule fewer", snap: good, rules: func(t testing.TB) []*detect.Rule { return mergeRules(t)[:1] },
			mismatch: true, msg: `rule "user_failures" of the snapshot is not loaded`},
		{name: "another state memory", snap: good, opts: func(o *detect.Options) { o.StateMemory = 2 * detect.MinStateMemory },
			mismatch: true, msg: "detect.state_memory is 32MiB in the snapshot, 64MiB here"},
		{name: "another lateness", snap: good, opts: func(o *detect.Options) { o.Lateness = 10 * time.Second },
			mismatch: true, msg: "detect.lateness is 5s in the snapshot, 10s here"},
		{name: "another format version", snap: reseal(append([]byte("VIGILSNP\x02"), good[9:]...)),
			mismatch: true, msg: "format version 2; this Vigil reads version 1"},
		{name: "empty", snap: nil, msg: "it ends within its header"},
		{name: "not a snapshot", snap: []byte("{\"rules\": []}\n"), msg: "not a Vigil detection snapshot"},
		{name: "cut in the options", snap: good[:12], msg: "it ends within its options section"},
		{name: "cut in half", snap: good[:len(good)/2], msg: "corrupt or truncated"},
		{name: "cut in the checksum", snap: good[:len(good)-1], msg: "it ends within its checksum"},
		{name: "a flipped byte", snap: flip(good, len(good)/2), msg: "its SHA-256 checksum does not match its contents"},
		{name: "a garbled state", snap: rewrite(good, func(meta, state []byte) ([]byte, []byte) { return meta, state[:len(state)/2] }),
			msg: "not decode"},
		{name: "a garbled options section", snap: rewrite(good, func(meta, state []byte) ([]byte, []byte) { return meta[:5], state }),
			msg: "its options section does not decode"},
		{name: "bytes after the checksum", snap: append(slices.Clone(good), 0), msg: "it has bytes after its checksum"},
		{name: "a cache of another size", snap: withStateMemory(bigSnap, detect.MinStateMemory), msg: "its window state cache does not load"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := mergeRules(t)
			if tc.rules != nil {
				rs = tc.rules(t)
			}
			opts := base
			if tc.opts != nil {
				tc.opts(&opts)
			}
			var out []detect.Alert
			e := newSnapEngine(t, rs, opts, &out)
			err := e.Restore(bytes.NewReader(tc.snap))
			if err == nil {
				t.Fatal("Restore accepted the snapshot")
			}
			t.Log(err)
			if errors.Is(err, detect.ErrSnapshotMismatch) != tc.mismatch || !strings.Contains(err.Error(), tc.msg) ||
				!strings.Contains(err.Error(), "rebuild its state by replaying events") {
				t.Fatalf("Restore: %v\nwant an error (mismatch %v) saying %q and what to do", err, tc.mismatch, tc.msg)
			}
			emptyAndUsable(t, e, &out, rs, opts)
		})
	}
}

func flip(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 0x55
	return out
}

// TestRestoreRefusesUsedEngine checks that Restore does not mix a
// snapshot into an engine that has state of its own, or is closed.
func TestRestoreRefusesUsedEngine(t *testing.T) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	snap := mergeSnapshot(t, opts)
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	evs := mergeEvents(t)
	e.Process(&evs[0])
	wm := e.Watermark()
	err := e.Restore(bytes.NewReader(snap))
	if err == nil || !strings.Contains(err.Error(), "restore into a new engine, before its first event") {
		t.Fatalf("Restore into a used engine: %v", err)
	}
	if !e.Watermark().Equal(wm) || len(e.Firing()) != 0 {
		t.Fatal("a refused Restore changed the engine")
	}
	closed := newSnapEngine(t, mergeRules(t), opts, &out)
	closed.Close()
	if err := closed.Restore(bytes.NewReader(snap)); err == nil {
		t.Fatal("Restore into a closed engine succeeded")
	}
	if _, err := closed.Snapshot(io.Discard); err == nil || !strings.Contains(err.Error(), "take the snapshot before Close") {
		t.Fatalf("Snapshot of a closed engine: %v", err)
	}
}

// TestRestoreWhileScraped restores while metrics are scraped: Restore
// replaces the window state cache, which Stats and the collector read
// (run with -race).
func TestRestoreWhileScraped(t *testing.T) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	snap := mergeSnapshot(t, opts)
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	var out []detect.Alert
	e := newSnapEngine(t, mergeRules(t), opts, &out)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			e.Stats()
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	err := e.Restore(bytes.NewReader(snap))
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.StateGroups == 0 {
		t.Fatal("no state after Restore")
	}
}

// FuzzRestore checks that Restore never panics, and that an engine that
// accepted a snapshot keeps working. An input is either a whole snapshot,
// tried as it is and with a valid checksum, or a state section, put in a
// valid snapshot in place of the real one: most of a snapshot's bytes are
// the cache's files, which fastcache checks, and this way the fuzzer
// spends its time in the decoders behind the checksum.
func FuzzRestore(f *testing.F) {
	opts := detect.Options{StateMemory: detect.MinStateMemory, Lateness: 5 * time.Second}
	good := mergeSnapshot(f, opts)
	var state []byte
	rewrite(good, func(meta, st []byte) ([]byte, []byte) { state = slices.Clone(st); return meta, st })
	f.Add(false, state)
	f.Add(false, state[:len(state)/2])
	f.Add(true, good[:64])
	f.Add(true, []byte("VIGILSNP\x01"))
	rs := mergeRules(f)
	evs := mergeEvents(f)
	f.Fuzz(func(t *testing.T, whole bool, data []byte) {
		snaps := [][]byte{data, reseal(data)}
		if !whole {
			snaps = [][]byte{rewrite(good, func(meta, _ []byte) ([]byte, []byte) { return meta, data })}
		}
		for _, snap := range snaps {
			e, err := detect.New(rs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if e.Restore(bytes.NewReader(snap)) == nil {
				for i := len(evs) / 3; i < len(evs); i += 7 {
					e.Process(&evs[i])
				}
				e.Flush()
				e.Firing()
			}
			e.Close()
		}
	})
}
