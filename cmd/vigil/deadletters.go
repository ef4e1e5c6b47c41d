package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
)

const deadlettersUsage = `Usage:
  vigil deadletters list  [--last N] [--reason CODE] [--since DURATION] [--json] [connection flags]
  vigil deadletters show  [--original] [connection flags] SEQ
  vigil deadletters count [--since DURATION] [connection flags]

Reads the rejected events Vigil keeps in the stream ` + ingest.DeadLetterStream + `:
list the latest, show one (its headers and payload; --original also prints the
whole message it came in, from ` + ingest.EventsStream + `), or count them by reason.
Connection flags: --config FILE (connect as vigil run with that config does),
--nats-url, --nats-user (password from $` + natsPasswordEnv + ` or --nats-password-file),
--nats-creds, --nats-nkey, --nats-ca. Run 'vigil deadletters list -h' for details.
`

// runDeadletters implements `vigil deadletters list|show|count`.
func runDeadletters(ctx context.Context, s streams, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(s.stderr, deadlettersUsage)
		return 2
	}
	cmds := map[string]func(context.Context, streams, []string) error{
		"list": deadlettersList, "show": deadlettersShow, "count": deadlettersCount,
	}
	if run, ok := cmds[args[0]]; ok {
		var usage usageError
		switch err := run(ctx, s, args[1:]); {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &usage):
			fmt.Fprintf(s.stderr, "vigil deadletters %s: %v\n%s", args[0], err, deadlettersUsage)
			return 2
		case errors.Is(err, errFlagParse):
			return 2 // the flag package has said what is wrong
		default:
			fmt.Fprintf(s.stderr, "vigil deadletters %s: %v\n", args[0], err)
			return 1
		}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(s.stdout, deadlettersUsage)
		return 0
	}
	fmt.Fprintf(s.stderr, "vigil deadletters: unknown subcommand %q\n%s", args[0], deadlettersUsage)
	return 2
}

// usageError is a mistake in a command line: it exits 2 with the usage.
type usageError string

func (e usageError) Error() string { return string(e) }

// errFlagParse stands for an error the flag package has already printed.
var errFlagParse = errors.New("bad flags")

// parseFlags parses fs's flags wherever they stand among args (the flag
// package stops at the first other argument) and returns the other
// arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, errFlagParse
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// deadLetter is what list and count read of one dead letter: its headers.
type deadLetter struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Code     string    `json:"reason_code"`
	Reason   string    `json:"reason"`
	Subject  string    `json:"subject"`
	EventSeq string    `json:"events_seq,omitempty"`
	Size     int       `json:"size"` // of the stored payload
}

func deadLetterOf(m jetstream.Msg) (deadLetter, error) {
	meta, err := m.Metadata()
	if err != nil {
		return deadLetter{}, err
	}
	h := m.Headers()
	size, _ := strconv.Atoi(h.Get(nats.MsgSize))
	return deadLetter{
		Seq: meta.Sequence.Stream, Time: meta.Timestamp.UTC(), Code: h.Get(ingest.HeaderRejectCode),
		Reason: h.Get(ingest.HeaderRejectReason), Subject: h.Get(ingest.HeaderSubject),
		EventSeq: h.Get(ingest.HeaderSequence), Size: size,
	}, nil
}

// dlFlags are the flags every subcommand shares.
type dlFlags struct {
	conn  natsClientFlags
	since time.Duration
}

func (f *dlFlags) register(fs *flag.FlagSet, since bool) {
	f.conn.register(fs)
	if since {
		fs.DurationVar(&f.since, "since", 0, "only dead letters stored within this `duration`, e.g. 1h (default: all)")
	}
}

// stream connects and returns the dead-letter stream; close the returned
// function when done.
func (f *dlFlags) stream(ctx context.Context) (jetstream.JetStream, jetstream.Stream, func(), error) {
	nc, err := f.conn.connect("vigil-deadletters")
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	st, err := js.Stream(ctx, ingest.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("stream %s not found: has Vigil run against this NATS? (--nats-url, --config)", ingest.DeadLetterStream)
	}
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("stream %s: %w", ingest.DeadLetterStream, err)
	}
	return js, st, nc.Close, nil
}

// scan calls fn with each dead letter's headers, from start (or since ago),
// up to the last one stored when the scan began.
func scan(ctx context.Context, st jetstream.Stream, start uint64, since time.Duration, fn func(deadLetter)) error {
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 || info.State.LastSeq < start {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: true, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(start, 1)}
	if since > 0 {
		from := time.Now().Add(-since)
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &from
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			dl, err := deadLetterOf(m)
			if err != nil {
				return err
			}
			fn(dl)
			if meta, _ := m.Metadata(); dl.Seq >= last || meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 { // nothing (left) in the window asked for
			return nil
		}
	}
}

func deadlettersList(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("vigil deadletters list", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f dlFlags
	f.register(fs, true)
	last := fs.Int("last", 20, "show the latest `N` dead letters (0: all)")
	reason := fs.String("reason", "", "only dead letters with this reason `code`, e.g. malformed_json")
	asJSON := fs.Bool("json", false, "print one JSON object per dead letter")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q; give everything as flags", pos[0]))
	}
	if *last < 0 {
		return usageError("--last must be 0 (all) or more")
	}
	_, st, done, err := f.stream(ctx)
	if err != nil {
		return err
	}
	defer done()
	var start uint64
	if *reason == "" && *last > 0 && f.since == 0 { // read only the tail
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		start = info.State.LastSeq - min(info.State.LastSeq, uint64(*last)) + 1
	}
	var out []deadLetter
	err = scan(ctx, st, start, f.since, func(dl deadLetter) {
		if *reason != "" && dl.Code != *reason {
			return
		}
		out = append(out, dl)
		if *last > 0 && len(out) > *last {
			out = out[1:]
		}
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(s.stdout)
		for _, dl := range out {
			_ = enc.Encode(dl)
		}
		return nil
	}
	if len(out) == 0 {
		fmt.Fprintln(s.stdout, "no dead letters")
		return nil
	}
	w := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tSTORED (UTC)\tREASON\tSUBJECT\tEVENTS SEQ\tDETAIL")
	for _, dl := range out {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", dl.Seq, dl.Time.Format(time.DateTime), printable(dl.Code),
			printable(dl.Subject), cmp.Or(dl.EventSeq, "-"), printable(dl.Reason))
	}
	return w.Flush()
}

func deadlettersShow(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("vigil deadletters show", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f dlFlags
	f.register(fs, false)
	original := fs.Bool("original", false, "also print the whole message the event came in, from "+ingest.EventsStream)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var seq uint64
	if len(pos) == 1 {
		seq, err = strconv.ParseUint(pos[0], 10, 64)
	}
	if len(pos) != 1 || err != nil || seq == 0 {
		return usageError("give one sequence number, as list prints it")
	}
	js, st, done, err := f.stream(ctx)
	if err != nil {
		return err
	}
	defer done()
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("no dead letter %d (removed by retention, ingest.deadletter_max_age, or never stored); see vigil deadletters list", seq)
	}
	if err != nil {
		return err
	}
	printStored(s.stdout, "Dead letter", m)
	if !*original {
		return nil
	}
	evSeq, err := strconv.ParseUint(m.Header.Get(ingest.HeaderSequence), 10, 64)
	if err != nil {
		return fmt.Errorf("this dead letter does not say where its message is (no %s header)", ingest.HeaderSequence)
	}
	events, err := js.Stream(ctx, ingest.EventsStream)
	var orig *jetstream.RawStreamMsg
	if err == nil {
		orig, err = events.GetMsg(ctx, evSeq)
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("message %d is no longer in %s (kept for ingest.stream_max_age)", evSeq, ingest.EventsStream)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ingest.EventsStream, err)
	}
	fmt.Fprintln(s.stdout)
	printStored(s.stdout, "Original message", orig)
	return nil
}

// printStored prints a stored message: where and when, its headers, and
// its payload with every control character escaped (the payload and some
// headers come from whoever published the event).
func printStored(w io.Writer, what string, m *jetstream.RawStreamMsg) {
	fmt.Fprintf(w, "%s %d in %s, stored %s\n", what, m.Sequence, printable(m.Subject), m.Time.UTC().Format(time.RFC3339))
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range m.Header.Values(k) {
			fmt.Fprintf(w, "  %s: %s\n", printable(k), printable(v))
		}
	}
	fmt.Fprintf(w, "Payload (%d bytes):\n%s\n", len(m.Data), printableText(string(m.Data)))
}

func deadlettersCount(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("vigil deadletters count", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f dlFlags
	f.register(fs, true)
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	_, st, done, err := f.stream(ctx)
	if err != nil {
		return err
	}
	defer done()
	counts := map[string]int{}
	total := 0
	if err := scan(ctx, st, 0, f.since, func(dl deadLetter) { counts[dl.Code]++; total++ }); err != nil {
		return err
	}
	codes := make([]string, 0, len(counts))
	width := len("total")
	for c := range counts {
		codes = append(codes, c)
		width = max(width, len(printable(cmp.Or(c, "(none)"))))
	}
	slices.SortFunc(codes, func(a, b string) int { return cmp.Or(counts[b]-counts[a], cmp.Compare(a, b)) })
	fmt.Fprintf(s.stdout, "%-*s  %8s\n", width, "REASON", "COUNT")
	for _, c := range codes {
		fmt.Fprintf(s.stdout, "%-*s  %8d\n", width, printable(cmp.Or(c, "(none)")), counts[c])
	}
	fmt.Fprintf(s.stdout, "%-*s  %8d\n", width, "total", total)
	return nil
}
