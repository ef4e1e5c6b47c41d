package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// stamped is a Sink that keeps each event as its JSON line and when
// JetStream stored it.
type stamped struct {
	mu  sync.Mutex
	got []string
}

func (s *stamped) Process(ev *event.Event) {
	line := fmt.Sprintf("%s received=%s", ev.AppendJSON(nil), ev.Received.UTC().Format(time.RFC3339Nano))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, line)
}

func (s *stamped) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// Live ingest and the rebuild of detection windows read the stream alike:
// the same events pass (the subject's service required, the future-skew
// limit judged against when the message was stored), each with the same
// Received, so a rebuilt engine holds what the live one held.
func TestLiveAndRebuildReadAlike(t *testing.T) {
	s := testkit.RunNATS(t)
	_, js := testkit.Connect(t, s)
	cfg := testConfig()
	ensureStreams(t, js, cfg)

	msgs := messages("alike", 3, 1, 4)
	publish(t, js, msgs)
	other := msgs[0][0]
	other.Service, other.RequestID = "billing", "other-service"
	ahead := msgs[0][1]
	ahead.Time, ahead.RequestID = time.Now().Add(cfg.MaxFutureSkew+time.Hour), "too-far-ahead"
	publishData(t, js, append(append(append(other.AppendJSON(nil), '\n'), ahead.AppendJSON(nil)...), "\n\nnot json"...))
	publish(t, js, messages("after", 2))

	live := &stamped{}
	c, _, _ := newConsumer(t, s, cfg, live)
	stop := run(t, c)
	testkit.WaitFor(t, waitTime, "every message acknowledged", settled(c))
	stop()

	rebuilt := &stamped{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Rebuild(ctx, time.Now().Add(-time.Hour), rebuilt); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	want := len(lines(msgs)) + 2
	got := live.lines()
	if len(got) != want {
		t.Fatalf("live ingest applied %d events, want %d (the other service's, the one too far ahead and the bad line rejected)", len(got), want)
	}
	for _, l := range got {
		if strings.Contains(l, "received=0001") {
			t.Fatalf("live event without the time JetStream stored it: %s", l)
		}
	}
	sameLines(t, "rebuilt events against live ones", rebuilt.lines(), got)
}

// A Replayer applies every event of the messages it is given, in order,
// however many batches they fill, each with the stored time as Received;
// rejected lines go to the callback with their line in the message, and
// events keep their own attrs.
func TestReplayerAppliesInOrder(t *testing.T) {
	sink := &stamped{}
	rp := ingest.NewReplayer(event.DefaultLimits(), sink)
	at := time.Now().UTC().Truncate(time.Second)
	var want []string
	var rejected []string
	for i := range 50 {
		m := messages(fmt.Sprintf("batch%d", i), 60)[0]
		data := append(m.data(), "\n{\"broken\""...)
		valid, bad := rp.Message(data, subject, at, func(re *event.RejectError, line []byte) {
			rejected = append(rejected, fmt.Sprintf("%d:%s", re.Line, line))
		})
		if valid != 60 || bad != 1 {
			t.Fatalf("message %d: %d valid, %d rejected; want 60 and 1", i, valid, bad)
		}
		for _, l := range lines([]message{m}) {
			want = append(want, l+" received="+at.Format(time.RFC3339Nano))
		}
	}
	rp.Close()
	rp.Close() // a second Close does nothing
	sameLines(t, "replayed events", sink.lines(), want)
	if len(rejected) != 50 || rejected[0] != `61:{"broken"` {
		t.Fatalf("rejected lines = %d, first %q; want 50, the first `61:{\"broken\"`", len(rejected), rejected[0])
	}
}
