package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/vigil-sec/vigil/simulate"
)

// simulateFlags are vigil simulate's flags.
type simulateFlags struct {
	conn                                                                natsClientFlags // --nats-url and the other connection flags
	attacks, benign, scenario, truth, honeyEP, honeyAcct, listed, start string
	rate, attackRate                                                    float64
	duration, warmup                                                    time.Duration
	batch, users                                                        int
	seed                                                                uint64
	set                                                                 map[string]bool
}

const simulateUsage = `Usage:
  vigil simulate [flags]                                   publish live traffic to NATS
  vigil simulate --scenario FILE.jsonl[.gz] --truth FILE.json [flags]
                                                           write a scenario to files

Live mode publishes background traffic (--rate events/s from --users users)
with the chosen --attack and --benign patterns, each starting as early as it
may: at once, except the attacks judged against a service's baseline
(error-spike, outage, latency-degradation, botnet-stuffing), which start
after --warmup (15m) of background. To see those fire, run with
--duration 0 (until interrupted) or at least 25m, or lower --warmup.

Scenario mode writes --duration (1h) of traffic with every attack and benign
pattern (or those named) at random times after a warm-up, parameters drawn
from --seed, as JSON lines sorted by ts, and a truth file for vigil backtest.
docs/simulate.md describes each attack and pattern.

Attacks: ` + "%s\nBenign patterns: %s\n\nFlags:\n"

func parseSimulateFlags(s streams, args []string) (simulateFlags, int) {
	var f simulateFlags
	fs := flag.NewFlagSet("vigil simulate", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	f.conn.register(fs)
	fs.Float64Var(&f.rate, "rate", simulate.DefaultRate, "background events per second (0: none)")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "how long: live default 30s (0: until interrupted), scenario default 1h")
	fs.StringVar(&f.attacks, "attack", "", "comma-separated attacks, or all (scenario default: all)")
	fs.StringVar(&f.attacks, "attacks", "", "same as --attack")
	fs.StringVar(&f.benign, "benign", "", "comma-separated benign patterns, or all (scenario default: all)")
	fs.Float64Var(&f.attackRate, "attack-rate", 0, "events per second of every rate-paced attack (0: each attack's own drawn rate)")
	fs.IntVar(&f.batch, "batch", 1, "events per message (NDJSON); 1 sends one event per message (live mode)")
	fs.Uint64Var(&f.seed, "seed", uint64(time.Now().UnixNano()), "random seed (same seed, same traffic)")
	fs.IntVar(&f.users, "users", 50_000, "users of the simulated API")
	fs.DurationVar(&f.warmup, "warmup", 15*time.Minute, "background before baseline-relative attacks may start")
	fs.StringVar(&f.scenario, "scenario", "", "write events to this `file` (.gz: gzip) instead of publishing")
	fs.StringVar(&f.truth, "truth", "", "with --scenario: write the truth (incidents, benign keys) to this `file`")
	fs.StringVar(&f.start, "start", simulate.DefaultStart.Format(time.RFC3339), "scenario mode: time of the first second (RFC 3339)")
	fs.StringVar(&f.honeyEP, "honey-endpoints", strings.Join(simulate.DefaultHoneyEndpoints, ","), "comma-separated honey routes, as configured in your rules")
	fs.StringVar(&f.honeyAcct, "honey-accounts", strings.Join(simulate.DefaultHoneyAccounts, ","), "comma-separated honey user names, as configured in your rules")
	fs.StringVar(&f.listed, "listed-cidrs", joinPrefixes(simulate.DefaultListedCIDRs), "comma-separated CIDRs of your known-bad list")
	fs.Usage = func() {
		fmt.Fprintf(s.stderr, simulateUsage, simulate.JoinNames(simulate.Attacks()), simulate.JoinNames(simulate.Benigns()))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0
		}
		return f, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.stderr, "vigil simulate: unexpected argument %q; see vigil simulate -h\n", fs.Arg(0))
		return f, 2
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, -1
}

func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// options turns the flags into scenario options.
func (f simulateFlags) options() (simulate.Options, error) {
	scenario := f.scenario != ""
	o := simulate.Options{Seed: f.seed, Rate: f.rate, Users: f.users, Duration: f.duration,
		AttackRate: f.attackRate, BaselineWarmup: f.warmup, Live: !scenario}
	if o.BaselineWarmup == 0 {
		o.BaselineWarmup = time.Nanosecond // 0 means "the default" to Options
	}
	var err error
	if scenario && !f.set["duration"] {
		o.Duration = time.Hour
	}
	attacks, benign := f.attacks, f.benign
	if scenario && !f.set["attack"] && !f.set["attacks"] {
		attacks = "all"
	}
	if scenario && !f.set["benign"] {
		benign = "all"
	}
	if o.Attacks, err = simulate.ParseAttacks(attacks); err != nil {
		return o, err
	}
	if o.Benign, err = simulate.ParseBenign(benign); err != nil {
		return o, err
	}
	if o.Start, err = time.Parse(time.RFC3339, f.start); err != nil {
		return o, fmt.Errorf("--start %q: use RFC 3339, e.g. 2026-01-12T09:00:00Z", f.start)
	}
	o.HoneyEndpoints, o.HoneyAccounts = splitList(f.honeyEP), splitList(f.honeyAcct)
	for _, c := range splitList(f.listed) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return o, fmt.Errorf("--listed-cidrs: %q is not a CIDR such as 198.51.100.0/24", c)
		}
		o.ListedCIDRs = append(o.ListedCIDRs, p.Masked())
	}
	return o, o.Validate()
}

func splitList(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runSimulate(ctx context.Context, s streams, args []string) int {
	f, code := parseSimulateFlags(s, args)
	if code >= 0 {
		return code
	}
	o, err := f.options()
	if err == nil && (f.scenario == "") != (f.truth == "") {
		err = errors.New("--scenario and --truth go together: name both files")
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 2
	}
	if f.scenario != "" {
		return writeScenario(s, o, f.scenario, f.truth)
	}
	return publishLive(ctx, s, f, o)
}

func writeScenario(s streams, o simulate.Options, events, truth string) int {
	start := time.Now()
	sc, err := simulate.Plan(o)
	if err == nil {
		var c simulate.Counts
		c, err = sc.WriteFiles(events, truth)
		t := sc.Truth()
		fmt.Fprintf(s.stderr, "wrote %d events (%s of traffic, seed %d) to %s in %s; %d incidents and %d benign keys to %s\n",
			c.Events, o.Duration, o.Seed, events, time.Since(start).Round(time.Millisecond), len(t.Incidents), len(t.Benign), truth)
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 1
	}
	return 0
}

func publishLive(ctx context.Context, s streams, f simulateFlags, o simulate.Options) int {
	nc, err := f.conn.connect("vigil-simulate")
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
	cfg := simulate.Config{Options: o, Batch: f.batch, Planned: func(sc *simulate.Scenario) { printSchedule(s.stderr, sc, o.Duration) }}
	st, err := simulate.Publish(ctx, js, cfg, progressPrinter(s.stderr))
	printSummary(s.stderr, st)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil simulate: %v\n", err)
		return 1
	}
	return 0
}

// printSchedule says when each attack and pattern runs, and which will not
// start before the end.
func printSchedule(w io.Writer, sc *simulate.Scenario, d time.Duration) {
	t := sc.Truth()
	for _, in := range t.Incidents {
		note := ""
		if d > 0 && in.Start >= d.Seconds() {
			note = fmt.Sprintf("  (after the end: run with --duration %s or more)", time.Duration(in.End*float64(time.Second)).Round(time.Minute))
		}
		fmt.Fprintf(w, "attack %-24s %s  from +%s to +%s%s\n", in.Attack, keyText(in.Key), secs(in.Start), secs(in.End), note)
	}
	seen := map[string]bool{}
	for _, b := range t.Benign {
		if !seen[b.Pattern] {
			seen[b.Pattern] = true
			fmt.Fprintf(w, "benign %-24s %s  from +%s to +%s\n", b.Pattern, keyText(b.Key), secs(b.Start), secs(b.End))
		}
	}
}

func keyText(k map[string]string) string {
	var parts []string
	for _, l := range []string{"service", "endpoint", "source_ip", "source_prefix", "user", "client_id"} {
		if v, ok := k[l]; ok {
			parts = append(parts, l+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
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
			fmt.Fprintf(w, "  attack %-24s %d events\n", a, n)
		}
	}
	for _, b := range simulate.Benigns() {
		if n := st.ByBenign[b]; n > 0 {
			fmt.Fprintf(w, "  benign %-24s %d events\n", b, n)
		}
	}
}
