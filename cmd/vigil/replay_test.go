package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/simulate"
)

var replayT0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// attackEvents returns normal traffic with a brute force and a credential
// stuffing run in it, as JSON lines.
func attackEvents(n int) []byte {
	var b []byte
	for i := range n {
		ev := event.Event{
			Time: replayT0.Add(time.Duration(i) * 100 * time.Millisecond), Service: "auth",
			RequestID: fmt.Sprintf("req-%d", i), Method: "POST", Endpoint: "/v1/auth/login", Status: 200,
			SourceIP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), User: fmt.Sprintf("user%d", i%300),
		}
		switch {
		case i%4 == 0 && i > 1000 && i < 2000: // brute force from one address
			ev.Status, ev.SourceIP = 401, netip.MustParseAddr("203.0.113.7")
		case i%5 == 1 && i > 3000 && i < 4000: // stuffing: many users, one address
			ev.Status, ev.SourceIP = 401, netip.MustParseAddr("203.0.113.66")
		}
		b = ev.AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gzipped(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func replay(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runReplay(context.Background(), streams{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestReplay(t *testing.T) {
	data := attackEvents(5000)
	plain := writeFile(t, "events.jsonl", data)
	gz := writeFile(t, "events.jsonl.gz", gzipped(t, data))
	bad := writeFile(t, "bad.jsonl", append([]byte("{\"ts\": 1}\nnot json\n\n"), data...))
	// A line longer than the read buffer (256 KiB) between valid events.
	long := writeFile(t, "long.jsonl", slices.Concat(data[:bytes.IndexByte(data, '\n')+1], bytes.Repeat([]byte("x"), 300<<10), []byte("\n"), data))
	tests := []struct {
		name     string
		stdin    []byte
		args     []string
		code     int
		rejected int
		stderr   string
	}{
		{"file", nil, []string{plain}, 0, 0, "5000 events read from 1 input(s): 5000 valid, 0 rejected"},
		{"gzip", nil, []string{gz}, 0, 0, "5000 valid"},
		{"stdin", data, []string{"-"}, 0, 0, "5000 valid"},
		{"rejects are counted", nil, []string{bad}, 0, 2, "bad.jsonl:2: rejected: malformed_json"},
		{"a too long line is read and rejected", nil, []string{long}, 0, 1, "5002 events read from 1 input(s): 5001 valid, 1 rejected"},
		{"missing file", nil, []string{filepath.Join(t.TempDir(), "nope")}, 1, 0, "open input"},
		{"no files", nil, nil, 2, 0, "at least one input file"},
		{"bad rules dir", nil, []string{"--rules", t.TempDir(), plain}, 1, 0, "no rules"},
		{"bad flag", nil, []string{"--state-memory", "lots", plain}, 2, 0, "invalid size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := replay(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("code %d, stderr:\n%s\nwant code %d and %q", code, errOut, tc.code, tc.stderr)
			}
			if code != 0 {
				return
			}
			if !strings.Contains(errOut, fmt.Sprintf("%d rejected", tc.rejected)) {
				t.Errorf("stderr does not report %d rejected:\n%s", tc.rejected, errOut)
			}
			checkAttackAlerts(t, out)
		})
	}
}

// checkAttackAlerts checks the transitions for attackEvents: both attacks
// try many users from one address, so each fires credential_stuffing once
// (brute_force_source_ip is for a few users), and each alert resolves once.
func checkAttackAlerts(t *testing.T, out string) {
	t.Helper()
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var a detect.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("bad output line %q: %v", line, err)
		}
		got[fmt.Sprintf("%s %s %v", a.Rule, a.Transition, a.Labels)]++
	}
	want := map[string]int{
		"credential_stuffing firing map[source_ip:203.0.113.66]":   1,
		"credential_stuffing resolved map[source_ip:203.0.113.66]": 1,
		"credential_stuffing firing map[source_ip:203.0.113.7]":    1,
		"credential_stuffing resolved map[source_ip:203.0.113.7]":  1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transitions:\n%v\nwant\n%v\noutput:\n%s", got, want, out)
	}
}

func TestReplayTwiceIsByteIdentical(t *testing.T) {
	p := writeFile(t, "events.jsonl", attackEvents(20000))
	_, first, _ := replay(t, nil, p)
	_, second, _ := replay(t, nil, p, "-")
	if first == "" || first != second {
		t.Fatalf("outputs differ or are empty:\n%s\n---\n%s", first, second)
	}
}

func TestReplayOutputFormat(t *testing.T) {
	_, out, _ := replay(t, attackEvents(5000), "-")
	first := strings.SplitN(out, "\n", 2)[0]
	var m map[string]any
	if err := json.Unmarshal([]byte(first), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rule", "category", "severity", "state", "labels", "value", "threshold", "window", "starts_at", "fingerprint", "summary", "description", "sample"} {
		if _, ok := m[k]; !ok {
			t.Errorf("alert lacks %q: %s", k, first)
		}
	}
	if _, ok := m["ends_at"]; ok {
		t.Errorf("firing alert has ends_at: %s", first)
	}
}

// benchTraffic writes n events of realistic traffic as JSON lines: four
// services, 50,000 client addresses, 10% logins of which a tenth fail, 1%
// server errors, and a brute force and a credential stuffing run.
func benchTraffic(tb testing.TB, n int) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "traffic.jsonl")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	services := []string{"auth", "billing", "catalog", "orders"}
	var b []byte
	for i := range n {
		g := (i * 7919) % 50_000
		ev := event.Event{
			Time: replayT0.Add(time.Duration(i) * 2 * time.Millisecond), Service: services[i%4],
			RequestID: fmt.Sprintf("%016x", i*2654435761), Method: "GET", Endpoint: "/v1/catalog/items/{id}", Status: 200,
			Path: fmt.Sprintf("/v1/catalog/items/%d", g), LatencyMS: float64(i%500) / 7, HasLatency: true,
			SourceIP: netip.AddrFrom4([4]byte{100, 64, byte(g >> 8), byte(g)}), UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		}
		switch r := i % 100; {
		case r < 1:
			ev.Status = 503
		case r < 10:
			ev.Service, ev.Method, ev.Endpoint, ev.Path, ev.User = "auth", "POST", "/v1/auth/login", "/v1/auth/login", fmt.Sprintf("user%d", g)
			if r == 9 {
				ev.Status = 401
			}
		}
		if i%50 == 0 && i%200_000 < 20_000 { // attack runs
			ev.Service, ev.Method, ev.Endpoint, ev.Status = "auth", "POST", "/v1/auth/login", 401
			ev.SourceIP, ev.User = netip.AddrFrom4([4]byte{203, 0, 113, byte(i / 200_000)}), fmt.Sprintf("victim%d", i%97)
		}
		b = ev.AppendJSON(b[:0])
		b = append(b, '\n')
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkReplay runs vigil replay with the default rules over one million
// events, decoding included, and reports events/s: over synthetic traffic,
// and over an hour of vigil simulate's realistic traffic with every attack
// and benign look-alike. In the same loop it decodes the same file with
// encoding/json into a plain struct, the reference the replay's time is
// compared with (x_json: replay time over that decode's time; the aim is at
// most 0.5). See docs/performance.md.
func BenchmarkReplay(b *testing.B) {
	b.Run("synthetic", func(b *testing.B) { benchReplay(b, benchTraffic(b, 1_000_000), 1_000_000) })
	b.Run("scenario", func(b *testing.B) {
		p, n := scenarioTraffic(b)
		benchReplay(b, p, n)
	})
}

func benchReplay(b *testing.B, path string, n int) {
	var replay, plain time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		var errb bytes.Buffer
		code := runReplay(context.Background(), streams{stdout: io.Discard, stderr: &errb}, []string{path})
		if code != 0 {
			b.Fatalf("replay failed: %s", errb.String())
		}
		replay += time.Since(start)
		start = time.Now()
		if got := jsonDecodeFile(b, path); got != n {
			b.Fatalf("encoding/json decoded %d events, want %d", got, n)
		}
		plain += time.Since(start)
	}
	b.ReportMetric(float64(n)*float64(b.N)/replay.Seconds(), "events/s")
	b.ReportMetric(replay.Seconds()/plain.Seconds(), "x_json")
}

// scenarioTraffic writes about a million events of simulated traffic (47
// minutes at the default rate) and returns the file and its event count.
func scenarioTraffic(tb testing.TB) (string, int) {
	sc, err := simulate.Plan(simulate.Options{Seed: 7, Duration: 47 * time.Minute, Rate: simulate.DefaultRate,
		Attacks: simulate.Attacks(), Benign: simulate.Benigns()})
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "scenario.jsonl")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := sc.WriteEvents(f)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	return p, c.Events
}

// plainEvent is the wire schema as a plain encoding/json struct.
type plainEvent struct {
	TS        time.Time         `json:"ts"`
	Service   string            `json:"service"`
	RequestID string            `json:"request_id"`
	Method    string            `json:"method"`
	Endpoint  string            `json:"endpoint"`
	Status    int               `json:"status"`
	Path      string            `json:"path"`
	LatencyMS *float64          `json:"latency_ms"`
	SourceIP  string            `json:"source_ip"`
	User      string            `json:"user"`
	ClientID  string            `json:"client_id"`
	UserAgent string            `json:"user_agent"`
	Attrs     map[string]string `json:"attrs"`
}

// jsonDecodeFile decodes every line of a JSON-lines file with
// encoding/json and returns how many it decoded.
func jsonDecodeFile(tb testing.TB, path string) int {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 256<<10))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var ev plainEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			tb.Fatal(err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}
