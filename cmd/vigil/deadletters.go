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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/notify"
)

const deadlettersUsage = `Usage:
  vigil deadletters list  [--last N] [--reason CODE | --receiver NAME] [--since DURATION] [--json] [--stream S] [connection flags]
  vigil deadletters show  [--original] [--stream S] [connection flags] SEQ
  vigil deadletters count [--since DURATION] [--stream S] [connection flags]

Reads the rejected events Vigil keeps in the stream ` + ingest.DeadLetterStream + `:
list the latest, show one (its headers and payload; --original also prints the
whole message it came in, from ` + ingest.EventsStream + `), or count them by reason.
With --stream notify it reads the notifications that finally failed, kept in
` + notify.DeadLetterStream + ` (list and count them by receiver).
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

func deadlettersList(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("vigil deadletters list", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f dlFlags
	f.register(fs, true)
	last := fs.Int("last", 20, "show the latest `N` dead letters (0: all)")
	reason := fs.String("reason", "", "only rejected events with this reason `code`, e.g. malformed_json")
	receiver := fs.String("receiver", "", "with --stream notify: only the notifications of this receiver `name`")
	asJSON := fs.Bool("json", false, "print one JSON object per dead letter")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q; give everything as flags", pos[0]))
	}
	switch {
	case *last < 0:
		return usageError("--last must be 0 (all) or more")
	case f.notify() && *reason != "":
		return usageError("failed notifications have no reason code; choose them with --receiver")
	case !f.notify() && *receiver != "":
		return usageError("--receiver goes with --stream notify; rejected events have --reason")
	}
	_, st, done, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	var start uint64
	if *reason == "" && *receiver == "" && *last > 0 && f.since == 0 { // read only the tail
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		start = info.State.LastSeq - min(info.State.LastSeq, uint64(*last)) + 1
	}
	var out []deadLetter
	err = scan(ctx, st, start, f.since, func(dl deadLetter) {
		if *reason != "" && dl.Code != *reason || *receiver != "" && dl.Receiver != *receiver {
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
	if f.notify() {
		fmt.Fprintln(w, "SEQ\tSTORED (UTC)\tRECEIVER\tATTEMPTS\tREASON")
	} else {
		fmt.Fprintln(w, "SEQ\tSTORED (UTC)\tREASON\tSUBJECT\tEVENTS SEQ\tDETAIL")
	}
	for _, dl := range out {
		if f.notify() {
			fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\n", dl.Seq, dl.Time.Format(time.DateTime), printable(dl.Receiver), dl.Attempts, printable(dl.Reason))
			continue
		}
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
	if *original && f.notify() {
		return usageError("--original goes with rejected events; a failed notification's payload is the whole delivery")
	}
	js, st, done, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		retention, list := "ingest.dead_letter_max_age", "vigil deadletters list"
		if f.notify() {
			retention, list = "notify.dead_letter_max_age", list+" --stream notify"
		}
		return fmt.Errorf("no dead letter %d (removed by retention, %s, or never stored); see %s", seq, retention, list)
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
	_, st, done, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	counts := map[string]int{}
	total, omitted, cut := 0, 0, 0
	err = scan(ctx, st, 0, f.since, func(dl deadLetter) {
		switch {
		case f.notify():
			counts[dl.Receiver]++
		case dl.Code == ingest.RejectCodeOmitted:
			// Not a rejected event: the count of a message's rejected
			// lines past the ones stored, whose reasons were not kept.
			counts[dl.Code] += dl.Omitted
			total += dl.Omitted
			omitted += dl.Omitted
			cut++
			return
		default:
			counts[dl.Code]++
		}
		total++
	})
	if err != nil {
		return err
	}
	by := "REASON"
	if f.notify() {
		by = "RECEIVER"
	}
	codes := make([]string, 0, len(counts))
	width := max(len("total"), len(by))
	for c := range counts {
		codes = append(codes, c)
		width = max(width, len(printable(cmp.Or(c, "(none)"))))
	}
	slices.SortFunc(codes, func(a, b string) int { return cmp.Or(counts[b]-counts[a], cmp.Compare(a, b)) })
	fmt.Fprintf(s.stdout, "%-*s  %8s\n", width, by, "COUNT")
	for _, c := range codes {
		fmt.Fprintf(s.stdout, "%-*s  %8d\n", width, printable(cmp.Or(c, "(none)")), counts[c])
	}
	fmt.Fprintf(s.stdout, "%-*s  %8d\n", width, "total", total)
	if omitted > 0 {
		msgs := "1 message"
		if cut > 1 {
			msgs = fmt.Sprintf("%d messages", cut)
		}
		fmt.Fprintf(s.stdout, "\nomitted: rejected lines past the first %d of a message (in %s), counted but not stored, so their\n"+
			"reasons are unknown; vigil deadletters list --reason omitted shows where each message is, show --original prints it.\n",
			ingest.MaxDeadLetters, msgs)
	}
	return nil
}
