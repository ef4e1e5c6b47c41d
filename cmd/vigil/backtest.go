package main

import (
	"bufio"
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
	"text/tabwriter"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/detect/backtest"
)

// runBacktest implements vigil backtest: replay events through the rules
// and score the alerts against a truth file.
func runBacktest(ctx context.Context, s streams, args []string) int {
	var o replayOptions
	fs := flag.NewFlagSet("vigil backtest", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	o.register(fs)
	truthPath := fs.String("truth", "", "truth `file`: the incidents and benign patterns in the events (JSON; see docs/rules.md)")
	alertsPath := fs.String("alerts", "", "also write every alert transition as JSON lines to this `file`")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of tables")
	fs.Usage = func() {
		fmt.Fprintln(s.stderr, "Usage: vigil backtest --truth TRUTH.json [flags] EVENTS...\n\nRuns the rules over recorded events as vigil replay does and scores the\nalerts against the truth: recall, first-alert delay, alerts and incidents\nper attack, and alerts on benign traffic.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.files = fs.Args()
	if *truthPath == "" || len(o.files) == 0 {
		fmt.Fprintln(s.stderr, "vigil backtest: name a --truth file and at least one events file (make both with vigil simulate --scenario)")
		return 2
	}
	if err := o.resolve(fs); err != nil {
		fmt.Fprintf(s.stderr, "vigil backtest: %v\n", err)
		return 2
	}
	truth, err := readTruthFile(*truthPath)
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil backtest: %v\n", err)
		return 1
	}
	var alerts []detect.Alert
	if err := replayRun(ctx, s, o, func(a detect.Alert) { alerts = append(alerts, a) }); err != nil {
		fmt.Fprintf(s.stderr, "vigil backtest: %v\n", err)
		return 1
	}
	if *alertsPath != "" {
		if err := writeAlerts(*alertsPath, alerts); err != nil {
			fmt.Fprintf(s.stderr, "vigil backtest: %v\n", err)
			return 1
		}
	}
	rep := backtest.Score(truth, alerts, backtest.Options{})
	if *asJSON {
		enc := json.NewEncoder(s.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			backtest.Report
			Summary []backtest.ByAttack `json:"summary"`
		}{rep, rep.Summary()}); err != nil {
			fmt.Fprintf(s.stderr, "vigil backtest: %v\n", err)
			return 1
		}
		return 0
	}
	printReport(s.stdout, rep)
	return 0
}

func readTruthFile(path string) (backtest.Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return backtest.Truth{}, fmt.Errorf("open truth: %w", err)
	}
	defer f.Close()
	return backtest.ReadTruth(bufio.NewReader(f))
}

func writeAlerts(path string, alerts []detect.Alert) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write alerts: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, a := range alerts {
		if err := enc.Encode(a); err != nil {
			f.Close()
			return fmt.Errorf("write alerts: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write alerts: %w", err)
	}
	return f.Close()
}

// printReport writes the per-attack summary, then every incident, then the
// alerts on benign traffic and those attributed to nothing.
func printReport(w io.Writer, rep backtest.Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\tincidents\tdetected\tmedian first alert\tmax alerts\tmax incidents")
	for _, a := range rep.Summary() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\n", a.Attack, a.Incidents, a.Detected, fmtDelay(a.MedianDelay, a.Detected > 0), a.MaxAlerts, a.MaxPages)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "incident\tkey\tfirst alert\talerts\tincidents\trules")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", r.ID, fmtKey(r.Key), fmtDelay(r.Delay, r.Detected), r.Alerts, r.Incidents, strings.Join(r.Rules, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nrecall %.3f (%d incidents), %d alerts on benign traffic, %d alerts attributed to no incident\n",
		rep.Recall, len(rep.Results), len(rep.BenignAlerts), len(rep.Unattributed))
	for _, f := range rep.BenignAlerts {
		fmt.Fprintf(w, "  benign %s: %s %s at %.0fs\n", f.Pattern, f.Rule, fmtKey(f.Labels), f.At)
	}
	for _, f := range rep.Unattributed {
		fmt.Fprintf(w, "  unattributed: %s %s at %.0fs\n", f.Rule, fmtKey(f.Labels), f.At)
	}
}

func fmtDelay(d time.Duration, detected bool) string {
	if !detected {
		return "MISSED"
	}
	return d.Round(100 * time.Millisecond).String()
}

func fmtKey(k map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(k)) {
		parts = append(parts, name+"="+k[name])
	}
	return strings.Join(parts, ",")
}
