package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestClusterQuietStream: JetStream pins a member only when it delivers an
// event, so on a quiet stream nobody was active before the first event,
// nor after the active member crashed; and a page that member was sending
// waited for notify.ack_wait (30 s). Now a standby wakes the consumer up
// when nobody holds the pin, and a cluster's delivery consumers give back
// what a crashed member had taken after failover_after.
func TestClusterQuietStream(t *testing.T) {
	s := testkit.RunNATS(t)
	rec := &pages{n: map[string]int{}}
	var arrived atomic.Int32
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 1 {
			// The first page is under way when its sender crashes: it
			// never comes back from the receiver.
			<-release
			http.Error(w, "the sender crashed", http.StatusServiceUnavailable)
			return
		}
		rec.ServeHTTP(w, r)
	}))
	defer hook.Close()
	defer close(release)
	members := []*running{
		clusterMember(t, s.ClientURL(), hook.URL, "a", 1, 2*time.Second),
		clusterMember(t, s.ClientURL(), hook.URL, "b", 1, 2*time.Second),
	}
	// No event yet: one member is active all the same.
	first := activeMember(t, members)
	_, js := testkit.Connect(t, s)
	bruteForce(t, js, "192.0.2.10")
	testkit.WaitUntil(t, 20*time.Second, "the page under way", func() bool { return arrived.Load() == 1 })
	// The active member crashes while sending it, and no event follows.
	members[first].d.nc.Close()
	crashed := time.Now()
	testkit.WaitFor(t, 15*time.Second, "the page sent again by the member that took over", func() error {
		if n := rec.count("brute_force_source_ip", "192.0.2.10", detect.TransitionFiring); n != 1 {
			return fmt.Errorf("%d pages; receiver requests %d", n, arrived.Load())
		}
		return nil
	})
	t.Logf("the page was sent again %s after the crash (failover_after 2s)", time.Since(crashed).Round(time.Millisecond))
	// The member that took over was pinned by a wake-up message, or by
	// the redelivery of one the crashed member had not acknowledged.
	activeMember(t, members, first)
	// A wake-up message holds no events, and is no malformed message either.
	for i, m := range members {
		if n := metric(t, m.d.Registry(), "vigil_events_rejected_total", "reason", string(event.ReasonMalformedJSON)) + metric(t, m.d.Registry(), "vigil_events_deadlettered_total"); n != 0 {
			t.Errorf("member %d rejected or dead-lettered %v messages: the wake-up messages were taken for malformed events", i, n)
		}
	}
	// A member woke the consumer up before the first event (no member was
	// active otherwise), and each wakes it up once at most for each time
	// nobody holds the pin (the start, the crash), not on every check.
	if n := metric(t, members[0].d.Registry(), "vigil_cluster_wakes_total") + metric(t, members[1].d.Registry(), "vigil_cluster_wakes_total"); n < 1 || n > 3 {
		t.Errorf("%v wake-up messages in all, want 1 to 3: at least one at the start, and none while a member held the pin", n)
	}
}

// TestClusterFreezeOnAQuietStream: a member frozen past failover_after (a
// long GC pause, SIGSTOP) loses its pin, yet when it resumes it still
// believes it holds it, and the server accepts its pulls: with no event to
// refuse them, it stayed "active" without announcing or delivering, and no
// other member woke the stream up (here there is none). Only the server's
// answer counts: the member wakes the stream up itself and is pinned again.
func TestClusterFreezeOnAQuietStream(t *testing.T) {
	s := testkit.RunNATS(t)
	hook := httptest.NewServer(&pages{n: map[string]int{}})
	defer hook.Close()
	m := clusterMember(t, s.ClientURL(), hook.URL, "alone", 1, 2*time.Second)
	activeMember(t, []*running{m})
	_, js := testkit.Connect(t, s)
	events, err := js.Consumer(t.Context(), ingest.EventsStream, m.d.cfg.Ingest.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	pinned := func() string {
		info, err := events.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range info.PriorityGroups {
			return g.PinnedClientID
		}
		return ""
	}
	// It freezes with one event in hand, until the server has unpinned it.
	release := make(chan struct{})
	frozen := make(chan struct{})
	go func() {
		defer close(frozen)
		m.d.consumer.Paused(func() { <-release })
	}()
	attempts(t, js, "192.0.2.10", 0, 1)
	testkit.WaitUntil(t, 20*time.Second, "the frozen member unpinned by the server", func() bool { return pinned() == "" })
	close(release)
	<-frozen
	testkit.WaitFor(t, 20*time.Second, "the member pinned again and allowed to deliver", func() error {
		if pinned() == "" {
			return errors.New("nobody is pinned")
		}
		if !m.d.failover.mayDeliver() {
			return errors.New("the member is pinned but its fence refuses: it holds a pin the server does not")
		}
		return nil
	})
}

// TestClusterReloadsComeTogether: cluster-wide reload requests that reach
// a member while it reloads are answered together by its next reload,
// which starts after all of them came, rather than by one reload each.
func TestClusterReloadsComeTogether(t *testing.T) {
	s := testkit.RunNATS(t)
	cfg := clusterConfig(t, s.ClientURL(), "http://127.0.0.1:9/", "a", 1, time.Minute)
	var loads atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	load := func() (config.Config, []byte, error) {
		if loads.Add(1) == 1 {
			close(entered)
			<-release // the first reload is slow
		}
		return cfg, nil, cfg.Validate()
	}
	m := startDaemonWith(t, cfg, Options{Stdout: io.Discard, Logger: testLogger(t), Load: load})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the member stops, should the test fail first
	nc, _ := testkit.Connect(t, s)
	inbox := nc.NewRespInbox()
	answers, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	ask := func() {
		if err := nc.PublishRequest(reloadSubject, inbox, nil); err != nil {
			t.Fatal(err)
		}
	}
	ask()
	<-entered
	for range 5 {
		ask()
	}
	testkit.WaitUntil(t, 10*time.Second, "five requests queued behind the reload under way", func() bool {
		return len(m.d.reloadRequests) == 5
	})
	free()
	for i := range 6 {
		msg, err := answers.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("answer %d of 6: %v", i+1, err)
		}
		var ans MemberReload
		if err := json.Unmarshal(msg.Data, &ans); err != nil || ans.Member != "a" || ans.Status != "unchanged" {
			t.Fatalf("answer %d: %s (%v), want a unchanged", i+1, msg.Data, err)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("the member reloaded %d times for 6 requests, want 2: the five that came during the first share the next", n)
	}
}
