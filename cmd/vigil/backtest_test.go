package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect/backtest"
)

func TestBacktestScoresAlertsAgainstTheTruth(t *testing.T) {
	events := writeFile(t, "events.jsonl", attackEvents(5000))
	truth := writeFile(t, "truth.json", []byte(`{"t0":"2025-06-01T08:00:00Z",
	 "incidents":[{"id":"bf-1","attack":"brute-force","key":{"source_ip":"203.0.113.7"},"start":100,"end":200},
	              {"id":"missed-1","attack":"imaginary","key":{"user":"nobody"},"start":10,"end":20}],
	 "benign":[{"pattern":"stuffer-called-benign","key":{"source_ip":"203.0.113.66"}}]}`))
	var out, errb bytes.Buffer
	code := runBacktest(context.Background(), streams{stdout: &out, stderr: &errb}, []string{"--truth", truth, "--json", events})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep backtest.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Results) != 2 || !rep.Results[0].Detected || rep.Results[1].Detected || rep.Recall != 0.5 {
		t.Fatalf("results = %+v", rep.Results)
	}
	if len(rep.BenignAlerts) == 0 {
		t.Fatal("the stuffing address, declared benign, raised no benign alert")
	}

	out.Reset()
	code = runBacktest(context.Background(), streams{stdout: &out, stderr: &errb}, []string{"--truth", truth, events})
	if code != 0 || !strings.Contains(out.String(), "MISSED") || !strings.Contains(out.String(), "recall 0.500") {
		t.Fatalf("exit %d, table:\n%s", code, out.String())
	}
}

func TestBacktestNeedsTruthAndEvents(t *testing.T) {
	var errb bytes.Buffer
	if code := runBacktest(context.Background(), streams{stdout: &bytes.Buffer{}, stderr: &errb}, []string{"x.jsonl"}); code != 2 || !strings.Contains(errb.String(), "--truth") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
