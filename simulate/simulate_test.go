package simulate

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect/backtest"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestParseNames(t *testing.T) {
	cases := []struct {
		in      string
		want    []Attack
		wantErr string
	}{
		{"", nil, ""},
		{"brute-force", []Attack{BruteForce}, ""},
		{"brute-force, error-spike,", []Attack{BruteForce, ErrorSpike}, ""},
		{"distributed,distributed-brute-force", []Attack{Distributed}, ""}, // the old name, once
		{"all", Attacks(), ""},
		{"ddos", nil, `unknown attack "ddos"; choose from all, brute-force, low-and-slow`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAttacks(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("ParseAttacks(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	if b, err := ParseBenign("all"); err != nil || len(b) != len(Benigns()) {
		t.Fatalf("ParseBenign(all) = %v, %v", b, err)
	}
	if _, err := ParseBenign("office"); err == nil || !strings.Contains(err.Error(), "office-nat") {
		t.Fatalf("ParseBenign(office) = %v; want the list of names", err)
	}
}

// TestGeneratorIsValidAndDeterministic checks the on-demand generator the
// end-to-end tests use: valid events, fixed by the seed, for every attack.
func TestGeneratorIsValidAndDeterministic(t *testing.T) {
	gen := func(seed uint64) []byte {
		g := NewGenerator(seed, []Attack{ErrorSpike})
		var out []byte
		var ev event.Event
		ts := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		for i := range 3000 {
			if i%5 == 0 {
				g.Attack(Attacks()[i/5%len(Attacks())], ts, &ev)
			} else {
				g.Normal(ts, &ev)
			}
			out = append(ev.AppendJSON(out), '\n')
		}
		return out
	}
	a, b, c := gen(1), gen(1), gen(2)
	if string(a) != string(b) {
		t.Fatal("the same seed produced different traffic")
	}
	if string(a) == string(c) {
		t.Fatal("different seeds produced the same traffic")
	}
	dec := event.NewDecoder(event.DefaultLimits())
	ids := map[string]bool{}
	valid, rejected := dec.DecodeMessage(a, "", time.Time{}, func(ev *event.Event) { ids[ev.RequestID] = true }, func(err *event.RejectError, line []byte) {
		t.Errorf("generated event rejected: %v: %s", err, line)
	})
	if valid != 3000 || rejected != 0 || len(ids) != 3000 {
		t.Fatalf("valid %d, rejected %d, distinct ids %d; want 3000, 0, 3000", valid, rejected, len(ids))
	}
}

// TestGeneratorBruteForceKeepsOneAddress: tests publish a brute force
// through Attack and expect one address failing many logins.
func TestGeneratorBruteForceKeepsOneAddress(t *testing.T) {
	g := NewGenerator(7, nil)
	var ev event.Event
	addrs, failed := map[string]bool{}, 0
	for range 100 {
		g.Attack(BruteForce, time.Now(), &ev)
		addrs[ev.SourceIP.String()] = true
		if ev.Status == 401 && ev.Endpoint == "/v1/auth/login" {
			failed++
		}
	}
	if len(addrs) != 1 || failed < 95 {
		t.Fatalf("%d addresses, %d failed logins of 100; want 1 address failing", len(addrs), failed)
	}
}

// TestScenarioFilesRoundTrip writes a scenario (plain and gzip), reads the
// events back with Vigil's decoder and the truth with ReadTruth.
func TestScenarioFilesRoundTrip(t *testing.T) {
	sc := plan(t, short(9))
	dir := t.TempDir()
	for _, name := range []string{"events.jsonl", "events.jsonl.gz"} {
		events, truth := filepath.Join(dir, name), filepath.Join(dir, name+".truth.json")
		c, err := sc.WriteFiles(events, truth)
		if err != nil {
			t.Fatal(err)
		}
		if n := countEvents(t, events); n != c.Events {
			t.Errorf("%s: read %d events, wrote %d", name, n, c.Events)
		}
		f, err := os.Open(truth)
		if err != nil {
			t.Fatal(err)
		}
		got, err := backtest.ReadTruth(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(sc.Truth())
		if back, _ := json.Marshal(got); string(back) != string(want) || len(got.Incidents) != len(Attacks()) {
			t.Errorf("%s: truth read back differs:\n%s\nwant\n%s", name, back, want)
		}
	}
}

// countEvents decodes a JSONL file (gzip by its name) and checks the
// lines are sorted by ts.
func countEvents(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(r)
	dec := event.NewDecoder(event.DefaultLimits())
	var ev event.Event
	var last time.Time
	n := 0
	for sc.Scan() {
		if err := dec.Decode(sc.Bytes(), "", time.Time{}, &ev); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if ev.Time.Before(last) {
			t.Fatalf("line %d: ts %s before %s", n+1, ev.Time, last)
		}
		last = ev.Time
		n++
	}
	return n
}

func TestPublishDeliversEveryEventOnce(t *testing.T) {
	_, js := testkit.Connect(t, testkit.RunNATS(t))
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"vigil.events.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 50} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			before, _ := stream.Info(ctx)
			var planned *Scenario
			cfg := Config{Options: Options{Rate: 2000, Duration: 300 * time.Millisecond, Users: 5000, Attacks: []Attack{BruteForce},
				AttackRate: 100, Seed: uint64(batch)}, Batch: batch, Planned: func(sc *Scenario) { planned = sc }}
			st, err := Publish(ctx, js, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := stream.Info(ctx)
			if got := info.State.Msgs - before.State.Msgs; int(got) != st.Messages || st.Errors != 0 || st.Events < st.Messages || st.ByAttack[BruteForce] == 0 || planned == nil {
				t.Fatalf("stream got %d messages; stats %+v", got, st)
			}
		})
	}
}
