package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// pages records the alert transitions a webhook receiver was sent, by rule,
// source address and transition.
type pages struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body webhook.Payload
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	for _, a := range body.Data.Alerts {
		p.n[a.Rule+" "+a.Labels["source_ip"]+" "+string(a.Transition)]++
	}
	p.mu.Unlock()
}

func (p *pages) all() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.n)
}

func (p *pages) count(rule, ip string, tr detect.Transition) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[rule+" "+ip+" "+string(tr)]
}

// clusterMember starts a daemon as a member of a cluster on nats (client
// URLs), delivering to the webhook at hook.
func clusterMember(t *testing.T, nats, hook, name string, replicas int, failoverAfter time.Duration) *running {
	t.Helper()
	return startDaemon(t, clusterConfig(t, nats, hook, name, replicas, failoverAfter))
}

func clusterConfig(t *testing.T, nats, hook, name string, replicas int, failoverAfter time.Duration) config.Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.NATS.URL, cfg.NATS.Replicas = nats, replicas
	cfg.Cluster.Enabled, cfg.Cluster.Member, cfg.Cluster.FailoverAfter = true, name, failoverAfter
	cfg.Ingest.AckWait = 2 * time.Second
	cfg.Notify.Receivers = []notify.ReceiverConfig{{Name: "hook", Webhook: &webhook.Config{URL: hook}}}
	cfg.Notify.Routes = []notify.RouteConfig{{Receivers: []string{"hook"}}}
	return cfg
}

// bruteForce publishes eight failed logins from ip, a fast brute force
// that brute_force_source_ip fires on.
func bruteForce(t *testing.T, js jetstream.JetStream, ip string) {
	t.Helper()
	attempts(t, js, ip, 0, 8)
}

// attempts publishes failed logins from..to-1 of a brute force from ip,
// each stamped when it is first published, as a service stamps a request.
// (Stamping them all up to 4 s before the first publish made them late
// when a stopped NATS node held that publish up for a second or more:
// events more than detect.lateness behind the watermark are left out.)
func attempts(t *testing.T, js jetstream.JetStream, ip string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		ev := event.Event{
			Time: time.Now(), Service: "auth",
			RequestID: fmt.Sprintf("%s-%d", ip, i), Method: "POST", Endpoint: "/v1/auth/login", Path: "/v1/auth/login",
			Status: 401, SourceIP: netip.MustParseAddr(ip), User: "user-" + ip,
		}
		m := &nats.Msg{Subject: "vigil.events.auth", Data: ev.AppendJSON(nil), Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
		// A publisher retries while the cluster moves a stream leader
		// away from a stopped node; the message id keeps a retry of a
		// stored event from counting twice.
		testkit.WaitFor(t, 30*time.Second, "the event stored", func() error {
			_, err := js.PublishMsg(t.Context(), m)
			return err
		})
	}
}

// activeMember waits until exactly one of the members not excluded reports
// itself active, and returns its index.
func activeMember(t *testing.T, members []*running, excluded ...int) int {
	t.Helper()
	active := -1
	testkit.WaitFor(t, 20*time.Second, "one active member", func() error {
		active = -1
		for i, m := range members {
			if metric(t, m.d.Registry(), "vigil_cluster_active") != 1 || slices.Contains(excluded, i) {
				continue
			}
			if active >= 0 {
				return fmt.Errorf("members %d and %d both active", active, i)
			}
			active = i
		}
		if active < 0 {
			return fmt.Errorf("no member active")
		}
		return nil
	})
	return active
}

func respData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestClusterFailover runs three members on a three-node NATS cluster and
// attacks them through four faults: the active member crashes, the next
// one freezes past failover_after, and a NATS node stops. Each attack must
// page once, from whichever member is active, and a member that lost its
// pin while frozen must not page when it wakes up.
func TestClusterFailover(t *testing.T) {
	cl := testkit.RunCluster(t, 3)
	rec := &pages{n: map[string]int{}}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	// The members start together, as a deployment's pods do: each
	// declares the same streams, buckets and consumers at once.
	ds := make([]*Daemon, 3)
	errs := make([]error, 3)
	var starting sync.WaitGroup
	for i := range ds {
		cfg := clusterConfig(t, cl.URLs(), hook.URL, fmt.Sprintf("m%d", i+1), 3, 2*time.Second)
		starting.Go(func() {
			ds[i], errs[i] = New(context.Background(), cfg, Options{Version: "test", Stdout: io.Discard, Logger: testLogger(t)})
		})
	}
	starting.Wait()
	var members []*running
	for i, d := range ds {
		if errs[i] != nil {
			t.Fatalf("member m%d: %v", i+1, errs[i])
		}
		members = append(members, runDaemon(t, d))
	}
	nc, js := connectJS(t, cl.URLs())
	paged := func(ip string) {
		t.Helper()
		testkit.WaitFor(t, 30*time.Second, "the brute force from "+ip+" paged", func() error {
			if rec.count("brute_force_source_ip", ip, detect.TransitionFiring) == 0 {
				var late []uint64
				for _, m := range members {
					late = append(late, m.d.detector.engine().Stats().Late)
				}
				return fmt.Errorf("pages so far: %v; late events per member: %v", rec.all(), late)
			}
			return nil
		})
	}

	bruteForce(t, js, "192.0.2.10")
	paged("192.0.2.10")
	first := activeMember(t, members)
	st, err := backend{members[first].d}.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cs := st.(Status).Cluster; cs == nil || cs.Role != "active" || cs.Member != fmt.Sprintf("m%d", first+1) || len(cs.Members) != 3 {
		t.Fatalf("status of the active member: %+v", cs)
	}

	// The active member crashes in the middle of an attack: its connection
	// to NATS is gone at once. The next one takes the attack's first half
	// over with the engine it kept following.
	attempts(t, js, "198.51.100.20", 0, 4)
	testkit.WaitFor(t, 10*time.Second, "the first half applied", func() error {
		return equalf(metric(t, members[first].d.Registry(), "vigil_events_received_total"), 12, "events received")
	})
	members[first].d.nc.Close()
	crashed := time.Now()
	attempts(t, js, "198.51.100.20", 4, 8)
	paged("198.51.100.20")
	t.Logf("crash: the attack paged %s after the active member's connection closed (failover_after 2s)", time.Since(crashed).Round(time.Millisecond))
	second := activeMember(t, members, first)
	if n := metric(t, members[second].d.Registry(), "vigil_cluster_handovers_total"); n != 1 {
		t.Errorf("vigil_cluster_handovers_total = %v on the member that took over, want 1", n)
	}
	// The window count is exact across the handover: the eight failed
	// logins, four applied by each member, each once. Read once the member
	// that took over has applied the second four: the window slides, so a
	// count of 12 would come down to 8 on its own.
	testkit.WaitFor(t, 10*time.Second, "the attack's second half applied by the member that took over", func() error {
		return equalf(metric(t, members[second].d.Registry(), "vigil_events_received_total"), 4, "events received")
	})
	var count float64
	for _, a := range members[second].d.detector.engine().Firing() {
		if a.Rule == "brute_force_source_ip" && a.Labels["source_ip"] == "198.51.100.20" {
			count = a.Value
		}
	}
	if count != 8 {
		t.Errorf("the attack's window count on the member that took over is %v, want 8: events were lost or applied twice across the handover", count)
	}

	// The next one freezes (intake blocked) past failover_after, with
	// the next attack's events in its client's buffer. When it wakes up it
	// works through them under the pin it lost; the fence keeps it from
	// announcing what they fire.
	announced := func(i int) float64 {
		reg := members[i].d.Registry()
		return metric(t, reg, "vigil_alert_transitions_total", "transition", "firing", "outcome", "notified") +
			metric(t, reg, "vigil_alert_transitions_total", "transition", "firing", "outcome", "duplicate")
	}
	before := announced(second)
	release := make(chan struct{})
	frozen := make(chan struct{})
	go func() {
		defer close(frozen)
		members[second].d.consumer.Paused(func() { <-release })
	}()
	froze := time.Now()
	bruteForce(t, js, "203.0.113.30")
	paged("203.0.113.30")
	t.Logf("freeze: the attack paged %s after the active member froze", time.Since(froze).Round(time.Millisecond))
	third := activeMember(t, members, first, second)
	close(release)
	<-frozen
	testkit.WaitFor(t, 20*time.Second, "the frozen member a standby again", func() error {
		return equalf(metric(t, members[second].d.Registry(), "vigil_cluster_active"), 0, "vigil_cluster_active")
	})
	if after := announced(second); after != before {
		t.Errorf("the member that lost its pin while frozen announced %v alerts after it woke up", after-before)
	}

	// A NATS node stops.
	cl.Stop(0)
	stopped := time.Now()
	bruteForce(t, js, "192.88.99.40")
	paged("192.88.99.40")
	t.Logf("node stop: the attack paged %s after a NATS node stopped", time.Since(stopped).Round(time.Millisecond))
	_ = third

	// The events consumer's leader steps down: the pin is the leader's, so
	// it moves too.
	resp, err := nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN."+ingest.EventsStream+".vigil", nil, 10*time.Second)
	if err != nil || !strings.Contains(string(resp.Data), `"success":true`) {
		t.Fatalf("consumer leader step-down: %v %s", err, respData(resp))
	}
	bruteForce(t, js, "100.64.5.50")
	paged("100.64.5.50")

	// A member joins: it rebuilds from the stream and follows as a
	// standby, ready to take over.
	members = append(members, clusterMember(t, cl.URLs(), hook.URL, "m4", 3, 2*time.Second))
	testkit.WaitFor(t, 20*time.Second, "the new member following", func() error {
		st, err := backend{members[3].d}.Status(t.Context())
		if err != nil {
			return err
		}
		cs := st.(Status).Cluster
		for _, m := range cs.Members {
			if m.Name == "m4" && m.Role == "standby" && m.Applied > 0 && m.Lag == 0 && m.Rules == st.(Status).Detect.RulesDigest {
				return nil
			}
		}
		return fmt.Errorf("member table %+v", cs.Members)
	})
	activeMember(t, members)
	// Every member runs the same config and rules.
	if n := metric(t, members[3].d.Registry(), "vigil_cluster_members_differing"); n != 0 {
		t.Errorf("vigil_cluster_members_differing = %v on the new member, want 0: every member runs the same config", n)
	}

	for _, ip := range []string{"192.0.2.10", "198.51.100.20", "203.0.113.30", "192.88.99.40", "100.64.5.50"} {
		if n := rec.count("brute_force_source_ip", ip, detect.TransitionFiring); n != 1 {
			t.Errorf("the brute force from %s paged %d times, want once", ip, n)
		}
	}
}

// TestClusterGracefulHandover: an active member that stops on purpose (a
// rolling update) hands over at once, not after failover_after (a minute
// here, longer than the test waits).
func TestClusterGracefulHandover(t *testing.T) {
	s := testkit.RunNATS(t)
	rec := &pages{n: map[string]int{}}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	members := []*running{
		clusterMember(t, s.ClientURL(), hook.URL, "a", 1, time.Minute),
		clusterMember(t, s.ClientURL(), hook.URL, "b", 1, time.Minute),
	}
	_, js := testkit.Connect(t, s)
	bruteForce(t, js, "192.0.2.10")
	testkit.WaitUntil(t, 20*time.Second, "the first attack paged", func() bool {
		return rec.count("brute_force_source_ip", "192.0.2.10", detect.TransitionFiring) == 1
	})
	first := activeMember(t, members)
	members[first].stop()
	bruteForce(t, js, "198.51.100.20")
	testkit.WaitUntil(t, 20*time.Second, "the second attack paged by the other member", func() bool {
		return rec.count("brute_force_source_ip", "198.51.100.20", detect.TransitionFiring) == 1
	})
	if other := activeMember(t, members, first); other == first {
		t.Fatal("the stopped member is still active")
	}
}

// TestClusterStandbyReload: a standby reloads new rules into its muted
// engine without announcing anything, keeps following, and detects with
// them once it takes over.
func TestClusterStandbyReload(t *testing.T) {
	s := testkit.RunNATS(t)
	rec := &pages{n: map[string]int{}}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	a := clusterMember(t, s.ClientURL(), hook.URL, "a", 1, time.Minute)
	_, js := testkit.Connect(t, s)
	bruteForce(t, js, "192.0.2.10")
	testkit.WaitUntil(t, 20*time.Second, "the first attack paged", func() bool {
		return rec.count("brute_force_source_ip", "192.0.2.10", detect.TransitionFiring) == 1
	})
	// b starts as a standby; its reload adds a known-bad range.
	cfg := clusterConfig(t, s.ClientURL(), hook.URL, "b", 1, time.Minute)
	next := cfg
	next.Detect.Lists = map[string]detect.ListSpec{"known_bad_sources": {CIDRs: []string{"203.0.113.0/24"}}}
	b := startDaemonWith(t, cfg, Options{Logger: a.d.log, Stdout: io.Discard, Load: func() (config.Config, []byte, error) { return next, nil, next.Validate() }})
	if err := b.d.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := metric(t, b.d.Registry(), "vigil_cluster_active"); n != 0 {
		t.Fatalf("the member that reloaded is active (%v); the test needs it a standby", n)
	}
	if got := rec.all(); len(got) != 1 {
		t.Fatalf("pages after the standby's reload: %v, want only the first attack's", got)
	}
	// The reload rebuilt b's windows from the stream, attack included, and
	// each member now sees that the other runs a different rule set.
	if n := metric(t, b.d.Registry(), "vigil_detection_rebuild_events"); n != 8 {
		t.Errorf("vigil_detection_rebuild_events = %v after the reload, want the attack's 8 events", n)
	}
	testkit.WaitUntil(t, 10*time.Second, "each member sees the other run a different rule set", func() bool {
		return metric(t, a.d.Registry(), "vigil_cluster_members_differing") == 1 &&
			metric(t, b.d.Registry(), "vigil_cluster_members_differing") == 1
	})
	a.stop()
	bruteForce(t, js, "203.0.113.30")
	testkit.WaitUntil(t, 20*time.Second, "the listed source paged by the reloaded member", func() bool {
		return rec.count("listed_source_activity", "203.0.113.30", detect.TransitionFiring) == 1
	})
	if n := rec.count("brute_force_source_ip", "192.0.2.10", detect.TransitionFiring); n != 1 {
		t.Errorf("the first attack paged %d times, want once", n)
	}
}

// TestClusterReloadReachesEveryMember: POST /api/v1/cluster/reload on one
// member reloads every member, each from its own config, and reports each
// one's outcome: 200 when all reloaded, 502 naming the member that failed
// and why. A member running alone refuses it with what to do instead.
func TestClusterReloadReachesEveryMember(t *testing.T) {
	s := testkit.RunNATS(t)
	rec := &pages{n: map[string]int{}}
	hook := httptest.NewServer(rec)
	defer hook.Close()
	tok, hash := admin.NewToken()
	var failB atomic.Bool
	member := func(name string) (*running, *config.Config) {
		cfg := clusterConfig(t, s.ClientURL(), hook.URL, name, 1, time.Minute)
		cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeWrite}}}
		next := cfg
		load := func() (config.Config, []byte, error) {
			if name == "b" && failB.Load() {
				return next, nil, errors.New("rules/extra.yaml:3: rule \"x\": unknown key \"tresholds\"")
			}
			return next, nil, next.Validate()
		}
		return startDaemonWith(t, cfg, Options{Stdout: io.Discard, Load: load}), &next
	}
	a, nextA := member("a")
	b, nextB := member("b")
	testkit.WaitUntil(t, 10*time.Second, "both members in the member table", func() bool {
		ms, err := a.d.failover.table.Members(t.Context())
		return err == nil && len(ms) == 2
	})
	// Both get the same new list; the reload reaches b through a.
	lists := map[string]detect.ListSpec{"known_bad_sources": {CIDRs: []string{"203.0.113.0/24"}}}
	nextA.Detect.Lists, nextB.Detect.Lists = lists, lists
	before := b.d.detector.state.Load().rulesDigest()
	api := apiClient{t: t, base: "http://" + a.d.Addr().String(), token: tok}
	// do returns the headers, then the body.
	report := func(resp string) (rep ClusterReload, body string) {
		t.Helper()
		body = resp[strings.Index(resp, "{"):]
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("report %s: %v", body, err)
		}
		return rep, body
	}
	rep, _ := report(api.do("POST", "/api/v1/cluster/reload", "", http.StatusOK))
	after := b.d.detector.state.Load().rulesDigest()
	if after == before || a.d.detector.state.Load().rulesDigest() != after {
		t.Fatalf("rule digests after the cluster reload: a %s, b %s (b before %s); want both on the new rules", a.d.detector.state.Load().rulesDigest(), after, before)
	}
	want := ClusterReload{Status: "reloaded", Members: []MemberReload{
		{Member: "a", Status: "reloaded", Config: a.d.failover.table.Self().Config, Rules: after, Notify: a.d.failover.table.Self().Notify},
		{Member: "b", Status: "reloaded", Config: b.d.failover.table.Self().Config, Rules: after, Notify: b.d.failover.table.Self().Notify},
	}}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("report %+v, want %+v", rep, want)
	}

	// b's config breaks: the report says so, a found nothing new, b keeps
	// its rules.
	failB.Store(true)
	rep, body := report(api.do("POST", "/api/v1/cluster/reload", "", http.StatusBadGateway))
	if rep.Status != "incomplete" || len(rep.Members) != 2 || rep.Members[0].Status != "unchanged" ||
		rep.Members[1].Status != "failed" || !strings.Contains(rep.Members[1].Error, `unknown key "tresholds"`) {
		t.Fatalf("report %s, want a unchanged and b failed with its error", body)
	}
	if got := b.d.detector.state.Load().rulesDigest(); got != after {
		t.Errorf("b's rules changed to %s by a failed reload", got)
	}

	// Alone, a daemon refuses and says what to do.
	cfg := testConfig(t)
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeWrite}}}
	alone := startDaemon(t, cfg)
	body = apiClient{t: t, base: "http://" + alone.d.Addr().String(), token: tok}.do("POST", "/api/v1/cluster/reload", "", http.StatusBadRequest)
	if !strings.Contains(body, "POST /api/v1/reload") {
		t.Errorf("refusal %s does not say to reload the instance itself", body)
	}
}
