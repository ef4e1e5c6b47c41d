package simulate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

func TestParseAttacks(t *testing.T) {
	cases := []struct {
		in      string
		want    []Attack
		wantErr string
	}{
		{"", nil, ""},
		{"brute-force", []Attack{BruteForce}, ""},
		{"brute-force, error-spike,", []Attack{BruteForce, ErrorSpike}, ""},
		{"ddos", nil, `unknown attack "ddos"`},
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
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("ParseAttacks(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestGeneratedEventsAreValidAndDeterministic checks that every generated
// event passes Vigil's own validator and that a seed fixes the traffic.
func TestGeneratedEventsAreValidAndDeterministic(t *testing.T) {
	gen := func(seed uint64) []byte {
		g := NewGenerator(seed, Attacks())
		var out []byte
		var ev event.Event
		ts := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		for i := range 2000 {
			if i%5 == 0 {
				g.Attack(Attacks()[i/5%4], ts, &ev)
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
	valid, rejected := dec.DecodeMessage(a, "", time.Time{}, func(ev *event.Event) {}, func(err *event.RejectError, line []byte) {
		t.Errorf("generated event rejected: %v: %s", err, line)
	})
	if valid != 2000 || rejected != 0 {
		t.Fatalf("valid %d, rejected %d; want 2000, 0", valid, rejected)
	}
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
			st, err := Publish(ctx, js, Config{Rate: 2000, Duration: 300 * time.Millisecond, Attacks: []Attack{BruteForce}, AttackRate: 100, Batch: batch, Seed: uint64(batch)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := stream.Info(ctx)
			if got := info.State.Msgs - before.State.Msgs; int(got) != st.Messages || st.Errors != 0 || st.Events < st.Messages || st.ByAttack[BruteForce] == 0 {
				t.Fatalf("stream got %d messages; stats %+v", got, st)
			}
		})
	}
}
