package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/rules"
)

// replayOptions are the flags vigil replay and vigil backtest share.
type replayOptions struct {
	rules       string
	config      string
	lateness    time.Duration
	stateMemory detect.ByteSize
	files       []string
	detect      detect.Config // from --config, with the flags applied
}

// register adds the shared flags to fs.
func (o *replayOptions) register(fs *flag.FlagSet) {
	def := detect.DefaultConfig()
	o.lateness, o.stateMemory = def.Lateness, def.StateMemory
	fs.StringVar(&o.rules, "rules", "", "rule directory (default: the embedded rule set, or the config's detect.rules)")
	fs.StringVar(&o.config, "config", "", "daemon config `file` whose detect section (lists, prefix sizes, incidents, rules) to use")
	fs.DurationVar(&o.lateness, "lateness", o.lateness, "allowed lateness of out-of-order events")
	fs.TextVar(&o.stateMemory, "state-memory", &o.stateMemory, "window state budget, e.g. 256MiB")
}

// resolve reads --config and applies the flags given over it.
func (o *replayOptions) resolve(fs *flag.FlagSet) error {
	o.detect = detect.DefaultConfig()
	if o.config != "" {
		cfg, _, err := config.Load(o.config)
		if err != nil {
			return err
		}
		o.detect = cfg.Detect
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rules":
			o.detect.Rules = o.rules
		case "lateness":
			o.detect.Lateness = o.lateness
		case "state-memory":
			o.detect.StateMemory = o.stateMemory
		}
	})
	return o.detect.Validate()
}

func parseReplayFlags(s streams, args []string) (replayOptions, int) {
	var o replayOptions
	fs := flag.NewFlagSet("vigil replay", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	o.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(s.stderr, "Usage: vigil replay [flags] FILE...\n\nRuns the rules over events (JSON lines; - is stdin; .gz accepted) on event\ntime and prints each alert transition as one JSON object per line.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, 0
		}
		return o, 2
	}
	o.files = fs.Args()
	if len(o.files) == 0 {
		fmt.Fprintln(s.stderr, "vigil replay: name at least one input file (- for stdin)")
		return o, 2
	}
	if err := o.resolve(fs); err != nil {
		fmt.Fprintf(s.stderr, "vigil replay: %v\n", err)
		return o, 2
	}
	return o, -1
}

// runReplay implements vigil replay.
func runReplay(ctx context.Context, s streams, args []string) int {
	o, code := parseReplayFlags(s, args)
	if code >= 0 {
		return code
	}
	out := bufio.NewWriterSize(s.stdout, 64<<10)
	var emitErr error
	err := replayRun(ctx, s, o, func(a detect.Alert) {
		b, err := json.Marshal(a)
		if err == nil {
			b = append(b, '\n')
			_, err = out.Write(b)
		}
		if err != nil && emitErr == nil {
			emitErr = err
		}
	})
	if err := out.Flush(); err != nil && emitErr == nil {
		emitErr = err
	}
	switch {
	case err != nil:
		fmt.Fprintf(s.stderr, "vigil replay: %v\n", err)
		return 1
	case emitErr != nil:
		fmt.Fprintf(s.stderr, "vigil replay: write alerts: %v\n", emitErr)
		return 1
	}
	return 0
}

// replayRun loads the rules o names, runs them over o's files on event time,
// passing every transition to emit, and writes the run's summary to stderr.
func replayRun(ctx context.Context, s streams, o replayOptions, emit func(detect.Alert)) error {
	rs, err := rules.LoadWith(o.detect.Rules, o.detect.Lists)
	if err != nil {
		return err
	}
	var transitions [3]int
	opts := o.detect.Options()
	opts.Emit = func(a detect.Alert) {
		emit(a)
		transitions[transitionSlot(a.Transition)]++
	}
	eng, err := detect.New(rs, opts)
	if err != nil {
		return err
	}
	defer eng.Close()
	start := time.Now()
	rep := newReplayer(ctx, s, eng)
	readErr := rep.run(o.files)
	eng.Flush()
	rep.summary(time.Since(start), transitions)
	return readErr
}

func transitionSlot(t detect.Transition) int {
	switch t {
	case detect.TransitionRepeat:
		return 1
	case detect.TransitionResolved:
		return 2
	}
	return 0
}

// openInput opens a file, or stdin for "-", decompressing gzip (by magic
// bytes, whatever the name) on the fly.
func openInput(name string, stdin io.Reader) (*bufio.Reader, func() error, int64, error) {
	var r io.Reader = stdin
	closeFn := func() error { return nil }
	size := int64(-1)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("open input: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		r, closeFn = f, f.Close
	}
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, nil, 0, fmt.Errorf("%s: %w", name, err)
		}
		zr.Multistream(true)
		return bufio.NewReaderSize(zr, 256<<10), closeFn, -1, nil
	}
	return br, closeFn, size, nil
}

// displayName is how a file is named in messages.
func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return strings.TrimPrefix(name, "./")
}

// replayer reads input in blocks of whole lines and hands them to an
// ingest.Replayer, which decodes them as live ingest decodes messages and
// applies the events on a second goroutine, in order, so output is
// deterministic and decoding and detection use both cores.
type replayer struct {
	ctx      context.Context
	s        streams
	eng      *detect.Engine
	rp       *ingest.Replayer
	read     uint64 // non-blank lines
	rejected uint64
	reasons  map[event.Reason]int
	shown    int
	files    int
	prog     *progress

	// The block being filled: lines from line first of file name.
	block      []byte
	blockLines int
	first      int
	name       string
	rejectFn   func(*event.RejectError, []byte) // r.rejectInBlock, bound once
}

const (
	replayBlock    = 256 << 10 // bytes of lines decoded at once
	maxShownReject = 10
)

func newReplayer(ctx context.Context, s streams, eng *detect.Engine) *replayer {
	r := &replayer{ctx: ctx, s: s, eng: eng, rp: ingest.NewReplayer(event.DefaultLimits(), eng),
		reasons: map[event.Reason]int{}, prog: newProgress(s.stderr)}
	r.rejectFn = r.rejectInBlock
	return r
}

func (r *replayer) run(files []string) error {
	var err error
	for _, name := range files {
		if err = r.readFile(name); err != nil {
			break
		}
	}
	r.rp.Close()
	r.prog.finish()
	return err
}

// readFile reads one input into blocks of whole lines.
func (r *replayer) readFile(name string) error {
	in, closeFn, size, err := openInput(name, r.s.stdin)
	if err != nil {
		return err
	}
	defer closeFn()
	r.files++
	r.prog.start(displayName(name), size)
	r.name, r.first = name, 1
	defer r.flush()
	for lineNo := 1; ; lineNo++ {
		if lineNo%4096 == 0 && r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		line, err := in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			r.flush()
			r.read++ // a line read, and rejected
			r.reject(name, lineNo, &event.RejectError{Reason: event.ReasonTooLarge, Detail: "line longer than the read buffer"})
			r.first = lineNo + 1
			if err = skipLine(in); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read %s: %w", displayName(name), err)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", displayName(name), err)
		}
		r.prog.advance(len(line))
		if len(trimLine(line)) > 0 {
			r.read++
		}
		r.add(line)
		if err != nil { // io.EOF
			return nil
		}
	}
}

// add appends one line (with or without its ending) to the block, and
// hands the block on once it is full.
func (r *replayer) add(line []byte) {
	if r.block == nil {
		r.block = make([]byte, 0, replayBlock+4096)
	}
	r.block = append(r.block, line...)
	if n := len(r.block); n > 0 && r.block[n-1] != '\n' {
		r.block = append(r.block, '\n')
	}
	r.blockLines++
	if len(r.block) >= replayBlock {
		r.flush()
	}
}

// flush hands the block to the replayer; its events point into it, so the
// next block is a new one. A block of blank lines only is no event.
func (r *replayer) flush() {
	if !allBlank(r.block) {
		r.rp.Message(r.block, "", time.Time{}, r.rejectFn)
	}
	r.first += r.blockLines
	r.block, r.blockLines = nil, 0
}

func allBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// rejectInBlock reports a line the decoder rejected, numbered in its file.
func (r *replayer) rejectInBlock(re *event.RejectError, _ []byte) {
	line := r.first + re.Line - 1
	re.Line = 0 // the message names the file's line instead
	r.reject(r.name, line, re)
}

func skipLine(in *bufio.Reader) error {
	for {
		_, err := in.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// trimLine drops the line ending and reports blank lines as empty.
func trimLine(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return b
		}
	}
	return nil
}

func (r *replayer) reject(name string, line int, re *event.RejectError) {
	r.rejected++
	r.reasons[re.Reason]++
	if r.shown < maxShownReject {
		r.prog.clear()
		fmt.Fprintf(r.s.stderr, "vigil replay: %s:%d: rejected: %v\n", displayName(name), line, re)
		r.shown++
	}
}

// summary writes the run's figures to stderr.
func (r *replayer) summary(elapsed time.Duration, tr [3]int) {
	st := r.eng.Stats()
	w := r.s.stderr
	valid := r.read - r.rejected
	fmt.Fprintf(w, "vigil replay: %d events read from %d input(s): %d valid, %d rejected, %d late\n",
		r.read, r.files, valid, r.rejected, st.Late)
	if len(r.reasons) > 0 {
		fmt.Fprintf(w, "vigil replay: rejected by reason:%s\n", formatCounts(r.reasons))
	}
	fmt.Fprintf(w, "vigil replay: alert transitions: %d firing, %d repeat, %d resolved\n", tr[0], tr[1], tr[2])
	byRule := map[string]int{}
	for _, rs := range r.eng.RuleStats() {
		if n := st.AlertsByRule[rs.Name]; n > 0 {
			byRule[rs.Name] = int(n)
		}
	}
	if len(byRule) > 0 {
		fmt.Fprintf(w, "vigil replay: alerts by rule:%s\n", formatCounts(byRule))
	}
	rate := float64(r.read) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "vigil replay: %s, %.0f events/s, window state %d groups in %.1f MiB\n",
		elapsed.Round(time.Millisecond), rate, st.StateGroups, float64(st.StateBytes)/(1<<20))
}

// formatCounts formats counts as " key=n" pairs in key order.
func formatCounts[K ~string](m map[K]int) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}

// progress draws a one-line progress report on a terminal; a nil *progress
// draws nothing.
type progress struct {
	w          io.Writer
	name       string
	size, done int64
	lines      int
	began      time.Time
	last       time.Time
	shown      bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progress{w: w, began: time.Now()}
}

func (p *progress) start(name string, size int64) {
	if p != nil {
		p.name, p.size, p.done = name, size, 0
	}
}

func (p *progress) advance(n int) {
	if p == nil {
		return
	}
	p.done += int64(n)
	if p.lines++; p.lines%65536 != 0 {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = now
	rate := float64(p.lines) / max(now.Sub(p.began).Seconds(), 1e-9)
	pct := ""
	if p.size > 0 {
		pct = fmt.Sprintf(" %3.0f%%", 100*float64(p.done)/float64(p.size))
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s  %d lines  %.0f lines/s", p.name, pct, p.lines, rate)
	p.shown = true
}

func (p *progress) clear() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progress) finish() { p.clear() }
