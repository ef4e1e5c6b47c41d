package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/vigil-sec/vigil/simulate"
)

func runSimulate(ctx context.Context, s streams, args []string) int {
	fs := flag.NewFlagSet("vigil simulate", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var conn natsClientFlags // --nats-url and the other connection flags
	conn.register(fs)
	rate := fs.Float64("rate", 200, "ordinary events per second")
	duration := fs.Duration("duration", 30*time.Second, "how long to publish (0: until interrupted)")
	attacks := fs.String("attack", "", "comma-separated attacks to inject: brute-force, credential-stuffing, distributed, error-spike")
	attackRate := fs.Float64("attack-rate", 10, "events per second of each attack")
	batch := fs.Int("batch", 1, "events per message (NDJSON) ; 1 sends one event per message")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (same seed, same traffic)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	as, err := simulate.ParseAttacks(*attacks)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 2
	}
	nc, err := conn.connect("vigil-simulate")
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: cannot connect: %v; is `vigil run` running?\n", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 1
	}
	cfg := simulate.Config{Rate: *rate, Duration: *duration, Attacks: as, AttackRate: *attackRate, Batch: *batch, Seed: *seed}
	st, err := simulate.Publish(ctx, js, cfg, progressPrinter(s.stderr))
	printSummary(s.stderr, st)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 1
	}
	return 0
}

// progressPrinter rewrites one status line when w is a terminal.
func progressPrinter(w io.Writer) func(simulate.Stats) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(st simulate.Stats) {
		fmt.Fprintf(w, "\r%6.0fs  %d events  %.0f/s  %d errors ", st.Elapsed.Seconds(), st.Events,
			float64(st.Events)/st.Elapsed.Seconds(), st.Errors)
	}
}

func printSummary(w io.Writer, st simulate.Stats) {
	rate := 0.0
	if st.Elapsed > 0 {
		rate = float64(st.Events) / st.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "\npublished %d events in %d messages over %s (%.0f events/s), %d publish errors\n",
		st.Events, st.Messages, st.Elapsed.Round(time.Millisecond), rate, st.Errors)
	for _, a := range simulate.Attacks() {
		if n := st.ByAttack[a]; n > 0 {
			fmt.Fprintf(w, "  attack %-20s %d events\n", a, n)
		}
	}
}
