package detect

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"time"

	"github.com/VictoriaMetrics/fastcache"
)

// Snapshots. Snapshot writes everything that decides the engine's future
// output: the window state (fastcache's contents, saved with its own file
// format, and the hot set with its LRU order), the firing alerts in the
// order they fired, the incident correlator, the table of recently known
// values, the presence filters, and the clock (newest event time,
// watermark, next due check). Restore loads it into a new engine built with
// the same rules and options, which then emits exactly the transitions,
// with the same StartsAt, labels, values and incident ids, that the
// snapshotted engine emits for the same later events. Counters (the _total
// metrics) start again from zero, as after any restart; gauges (firing
// alerts, state size) follow the restored state. Live, Now, Emit, Logger
// and Registerer may differ between the two engines; Options.Label must be
// the same function (the same pseudonymisation key): restored alerts keep
// the labels it gave them.
//
// The format, all integers varints unless said otherwise:
//
//	magic     8 bytes "VIGILSNP"
//	version   uvarint (snapshotVersion)
//	meta      uvarint length, then the options that shape the state (state
//	          memory, lateness, prefix sizes, incident window, max firing),
//	          a SHA-256 of the operator lists, and each rule's name and a
//	          SHA-256 of its JSON, in rule order
//	state     uvarint length, then the engine's state (snapshot_state.go)
//	cache     uvarint file count, then per file of fastcache's
//	          SaveToFile directory its name and its length-prefixed bytes
//	trailer   SHA-256 of every byte before it
//
// Restore reads and verifies the whole snapshot (trailer, then meta, then
// state, then the cache files) before it touches the engine: on any error
// the engine is unchanged, still empty and usable, and the caller rebuilds
// the state by replaying events instead. A snapshot larger than its
// options allow, a length beyond what is left, a count beyond what its
// bytes can hold, an index out of range: each is an error, and no length
// read from the snapshot allocates more than the bytes actually read
// (fastcache's own loader, reached only behind the checksum and its files'
// snappy checksums, trusts their lengths). The trailer detects corruption
// and truncation, not tampering: keep snapshots where only Vigil writes, as
// its stream.
//
// Snapshot holds the engine's lock while it copies the state: fastcache's
// buckets into files in a temporary directory (Options.TempDir, or $TMPDIR) and the rest
// encoded into memory. It writes to w after unlocking, so intake pauses
// only for the copy: with the shipped rules and the default 256 MiB on two
// cores, about 55 ms after a simulated hour at 300 events/s (a 16 MiB
// snapshot) and 70 ms with the cache full (21 MiB); Restore takes about
// as long (BenchmarkSnapshot).

const (
	snapshotMagic   = "VIGILSNP"
	snapshotVersion = 1
	// maxSnapshotFiles bounds the cache files: metadata and one data file
	// per saving goroutine.
	maxSnapshotFiles = 1 + 512
	maxMetaBytes     = 1 << 20
)

// ErrSnapshotMismatch is wrapped by Restore's errors when the snapshot was
// taken with other rules or options or in another format version; the
// error says what differs.
var ErrSnapshotMismatch = errors.New("detection snapshot does not match this engine")

// errRestoreUsed is Restore's error for an engine that already has state.
var errRestoreUsed = errors.New("detection snapshot not restored: the engine has already processed events; restore into a new engine, before its first event")

var cacheFileRE = regexp.MustCompile(`^(metadata|data\.[0-9]{1,4})\.bin$`)

// Snapshot writes the engine's detection state to w (see the format above)
// and returns the number of bytes written. It may run concurrently with
// Process; the snapshot holds the state as it was at one instant between
// two events.
func (e *Engine) Snapshot(w io.Writer) (int64, error) {
	dir, err := os.MkdirTemp(e.opts.TempDir, "vigil-snapshot-")
	if err != nil {
		return 0, fmt.Errorf("detection snapshot: %w; make data_dir (or TMPDIR) a writable directory with room for the window state", err)
	}
	defer os.RemoveAll(dir)
	cacheDir := filepath.Join(dir, "cache")
	meta := e.snapshotMeta()
	start := time.Now()
	state, err := e.copyState(cacheDir)
	locked := time.Since(start)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	head := append([]byte(snapshotMagic), binary.AppendUvarint(nil, snapshotVersion)...)
	head = binary.AppendUvarint(head, uint64(len(meta)))
	head = append(head, meta...)
	head = binary.AppendUvarint(head, uint64(len(state)))
	if _, err := cw.Write(head); err != nil {
		return cw.n, fmt.Errorf("detection snapshot: write: %w", err)
	}
	if _, err := cw.Write(state); err != nil {
		return cw.n, fmt.Errorf("detection snapshot: write: %w", err)
	}
	if err := writeCacheFiles(cw, cacheDir); err != nil {
		return cw.n, err
	}
	if _, err := cw.Write(h.Sum(nil)); err != nil {
		return cw.n, fmt.Errorf("detection snapshot: write: %w", err)
	}
	e.log.Debug("detection snapshot written", "bytes", cw.n, "lock_held", locked)
	return cw.n, nil
}

// copyState saves the cache into dir and encodes the rest, under the lock.
func (e *Engine) copyState(dir string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("detection snapshot: the engine is closed; take the snapshot before Close")
	}
	if err := e.cache.SaveToFileConcurrent(dir, runtime.GOMAXPROCS(0)); err != nil {
		return nil, fmt.Errorf("detection snapshot: save window state: %w; check that data_dir (or TMPDIR) is writable and has room", err)
	}
	return e.encodeState(), nil
}

// writeCacheFiles writes the files fastcache saved in dir, in name order.
func writeCacheFiles(w io.Writer, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("detection snapshot: read saved window state: %w", err)
	}
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(ents)))); err != nil {
		return fmt.Errorf("detection snapshot: write: %w", err)
	}
	for _, ent := range ents {
		if err := writeCacheFile(w, filepath.Join(dir, ent.Name())); err != nil {
			return err
		}
	}
	return nil
}

func writeCacheFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("detection snapshot: read saved window state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("detection snapshot: read saved window state: %w", err)
	}
	name := filepath.Base(path)
	head := binary.AppendUvarint(nil, uint64(len(name)))
	head = binary.AppendUvarint(append(head, name...), uint64(fi.Size()))
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("detection snapshot: write: %w", err)
	}
	if _, err := io.CopyN(w, f, fi.Size()); err != nil {
		return fmt.Errorf("detection snapshot: write window state file %s: %w", name, err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore loads a snapshot written by an engine built with the same rules
// and options into e, which must be new (no event processed yet). It emits
// nothing. On any error e is left as it was, empty and usable; errors
// wrapping ErrSnapshotMismatch say what differs from the snapshot.
func (e *Engine) Restore(r io.Reader) error {
	if e.used() {
		return errRestoreUsed
	}
	dir, err := os.MkdirTemp(e.opts.TempDir, "vigil-restore-")
	if err != nil {
		return fmt.Errorf("detection snapshot not restored: %w; make data_dir (or TMPDIR) a writable directory with room for the window state", err)
	}
	defer os.RemoveAll(dir)
	cacheDir := filepath.Join(dir, "cache")
	meta, state, err := e.readSnapshot(r, cacheDir)
	if err != nil {
		return err
	}
	if err := e.checkMeta(meta); err != nil {
		return err
	}
	st, err := e.decodeState(state)
	if err != nil {
		return err
	}
	_, cacheBudget := splitBudget(e.opts.StateMemory)
	st.cache, err = fastcache.LoadFromFileMaxBytes(cacheDir, cacheBudget)
	if err != nil {
		return snapshotCorrupt("its window state cache does not load (%v)", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hasTime || e.closed {
		st.cache.Reset()
		return errRestoreUsed
	}
	e.install(st)
	return nil
}

func (e *Engine) used() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hasTime || e.closed
}

// snapshotCorrupt is the error for a snapshot that cannot be read.
func snapshotCorrupt(format string, args ...any) error {
	return fmt.Errorf("detection snapshot not restored: it is corrupt or truncated: %s; the engine stays empty: rebuild its state by replaying events", fmt.Sprintf(format, args...))
}

// snapshotMismatch is the error for a snapshot of another configuration.
func snapshotMismatch(what string) error {
	return fmt.Errorf("%w: %s; the engine stays empty: rebuild its state by replaying events (snapshots taken from now on will match)", ErrSnapshotMismatch, what)
}

// snapReader reads a snapshot, hashing what it reads.
type snapReader struct {
	lr    *io.LimitedReader
	br    *bufio.Reader
	h     hash.Hash
	limit int64
}

func (s *snapReader) Read(p []byte) (int, error) {
	n, err := s.br.Read(p)
	s.h.Write(p[:n])
	return n, err
}

func (s *snapReader) ReadByte() (byte, error) {
	b, err := s.br.ReadByte()
	if err == nil {
		s.h.Write([]byte{b})
	}
	return b, err
}

// fail turns a read error into Restore's error.
func (s *snapReader) fail(what string, err error) error {
	switch {
	case s.lr.N <= 0:
		return snapshotCorrupt("it is larger than the %d bytes a snapshot of this engine's options can take", s.limit)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return snapshotCorrupt("it ends within its %s", what)
	}
	return fmt.Errorf("detection snapshot not restored: read %s: %w; the engine stays empty: rebuild its state by replaying events", what, err)
}

// blob reads a length-prefixed section of at most max bytes. The buffer
// grows with what is read, not with the length the snapshot claims.
func (s *snapReader) blob(what string, max uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(s)
	if err != nil {
		return nil, s.fail(what, err)
	}
	if n > max {
		return nil, snapshotCorrupt("its %s claims %d bytes, more than the %d it can hold", what, n, max)
	}
	var b bytes.Buffer
	if _, err := io.CopyN(&b, s, int64(n)); err != nil {
		return nil, s.fail(what, err)
	}
	return b.Bytes(), nil
}

// snapshotLimit bounds a snapshot of e: the cache files (fastcache's data
// and index, under four times the state budget), firing alerts and
// incidents, and the fixed-size tables.
func (e *Engine) snapshotLimit() int64 {
	return 4*int64(e.opts.StateMemory) + int64(e.opts.MaxFiring)<<16 + int64(len(e.rules))<<20 + 64<<20
}

// readSnapshot reads a whole snapshot, saving its cache files into dir, and
// checks its trailer; it returns the meta and state sections.
func (e *Engine) readSnapshot(r io.Reader, dir string) (meta, state []byte, err error) {
	limit := e.snapshotLimit()
	lr := &io.LimitedReader{R: r, N: limit}
	s := &snapReader{lr: lr, br: bufio.NewReaderSize(lr, 64<<10), h: sha256.New(), limit: limit}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(s, magic); err != nil {
		return nil, nil, s.fail("header", err)
	}
	if string(magic) != snapshotMagic {
		return nil, nil, snapshotCorrupt("it does not start with %q: it is not a Vigil detection snapshot", snapshotMagic)
	}
	v, err := binary.ReadUvarint(s)
	if err != nil {
		return nil, nil, s.fail("header", err)
	}
	if v != snapshotVersion {
		return nil, nil, snapshotMismatch(fmt.Sprintf("it has format version %d; this Vigil reads version %d", v, snapshotVersion))
	}
	if meta, err = s.blob("options section", maxMetaBytes); err != nil {
		return nil, nil, err
	}
	if state, err = s.blob("state section", uint64(limit)); err != nil {
		return nil, nil, err
	}
	if err := s.readCacheFiles(dir); err != nil {
		return nil, nil, err
	}
	sum := s.h.Sum(nil)
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s.br, trailer); err != nil {
		return nil, nil, s.fail("checksum", err)
	}
	if !bytes.Equal(sum, trailer) {
		return nil, nil, snapshotCorrupt("its SHA-256 checksum does not match its contents")
	}
	if _, err := s.br.ReadByte(); err != io.EOF {
		return nil, nil, snapshotCorrupt("it has bytes after its checksum")
	}
	return meta, state, nil
}

// readCacheFiles saves the snapshot's cache files into dir.
func (s *snapReader) readCacheFiles(dir string) error {
	n, err := binary.ReadUvarint(s)
	if err != nil {
		return s.fail("window state files", err)
	}
	if n == 0 || n > maxSnapshotFiles {
		return snapshotCorrupt("it claims %d window state files; a snapshot has 2 to %d", n, maxSnapshotFiles)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("detection snapshot not restored: %w; make data_dir (or TMPDIR) a writable directory with room for the window state", err)
	}
	var names []string
	for range n {
		name, err := s.blob("window state file name", 32)
		if err != nil {
			return err
		}
		if !cacheFileRE.Match(name) || slices.Contains(names, string(name)) {
			return snapshotCorrupt("it holds a window state file named %q", name)
		}
		names = append(names, string(name))
		if err := s.readCacheFile(filepath.Join(dir, string(name))); err != nil {
			return err
		}
	}
	if !slices.Contains(names, "metadata.bin") {
		return snapshotCorrupt("its window state lacks fastcache's metadata.bin")
	}
	return nil
}

func (s *snapReader) readCacheFile(path string) error {
	size, err := binary.ReadUvarint(s)
	if err != nil {
		return s.fail("window state file", err)
	}
	if size > uint64(s.limit) {
		return snapshotCorrupt("a window state file claims %d bytes, more than a snapshot can hold", size)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("detection snapshot not restored: %w; make data_dir (or TMPDIR) a writable directory with room for the window state", err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, s, int64(size)); err != nil {
		if errors.Is(err, io.EOF) || s.lr.N <= 0 {
			return s.fail("window state file", err)
		}
		return fmt.Errorf("detection snapshot not restored: save window state file: %w; check that data_dir (or TMPDIR) has room", err)
	}
	return f.Close()
}
