package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
)

const ruleBruteForce = "brute_force_source_ip"

// TestClusterFailover runs three vigil processes as one cluster
// (failover_after 2s) on three nats-server processes forming a NATS
// cluster, every stream on all three nodes, and attacks them through two
// faults: the active member is killed with SIGKILL halfway through an
// attack, then the NATS node leading the events consumer stops (SIGTERM).
// Every attack must page, once per receiver, and the member that took
// over from the killed one must say it took over once.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	const failoverAfter = 2 * time.Second
	nc := startNATSCluster(t, 3)
	recvs := []*receiver{newReceiver(t, "a", 0), newReceiver(t, "b", 0)}
	var members []*vigil
	for i := range 3 {
		members = append(members, newVigil(t, vigilConfig{NATSURL: nc.urls(), Replicas: 3,
			Member: fmt.Sprintf("m%d", i+1), FailoverAfter: failoverAfter,
			Receivers: []receiverSpec{recvs[0].spec(), recvs[1].spec()}}))
	}
	c := connect(t, nc.urls())
	var attacks []string
	paged := func(ip string) time.Time {
		t.Helper()
		attacks = append(attacks, ip)
		k := alertKey{ruleBruteForce, ip, firing}
		testkit.WaitFor(t, 30*time.Second, "the brute force from "+ip+" paged", func() error {
			for _, r := range recvs {
				if r.count(k) == 0 {
					return fmt.Errorf("receiver %s: nothing yet; announcements %v", r.name, r.announcements())
				}
			}
			return nil
		})
		at, _ := recvs[0].first(k)
		return at
	}

	// JetStream pins the first member that is delivered an event.
	c.attempts(t, "192.0.2.10", 0, 8)
	paged("192.0.2.10")
	first := activeMember(t, members)

	// The active member dies halfway through an attack, its first half
	// applied; the next member takes over after failover_after.
	const ipKill = "198.51.100.20"
	before := members[first].metric("vigil_events_received_total")
	c.attempts(t, ipKill, 0, 4)
	testkit.WaitFor(t, 10*time.Second, "the attack's first half applied", func() error {
		return receivedAtLeast(members[first], before+4)
	})
	members[first].kill9()
	killed := time.Now()
	c.attempts(t, ipKill, 4, 8)
	t.Logf("kill -9: the attack paged %s after the active member (m%d) was killed (failover_after %s)",
		paged(ipKill).Sub(killed).Round(time.Millisecond), first+1, failoverAfter)
	second := activeMember(t, members)
	m, err := members[second].metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := m["vigil_cluster_handovers_total"]; n != 1 {
		t.Errorf("vigil_cluster_handovers_total = %v on m%d, which took over from the killed m%d; want 1", n, second+1, first+1)
	}
	t.Logf("kill -9: m%d took over; its catch-up took %.0f ms", second+1, m["vigil_cluster_takeover_seconds_sum"]*1000)

	// The NATS node leading the events consumer stops: the consumer's
	// leader moves to another node, and the pin with it.
	node := nc.consumerLeader(t, c)
	node.stop()
	stopped := time.Now()
	const ipNode = "203.0.113.30"
	c.attempts(t, ipNode, 0, 8)
	t.Logf("node stop: the attack paged %s after NATS node %s, the events consumer's leader, stopped",
		paged(ipNode).Sub(stopped).Round(time.Millisecond), node.name)
	if third := activeMember(t, members); third != second {
		t.Logf("node stop: m%d took over from m%d", third+1, second+1)
	}

	waitOutboxEmpty(t, c)
	want := map[alertKey]int{}
	for _, ip := range attacks {
		want[alertKey{ruleBruteForce, ip, firing}] = 1
	}
	for _, r := range recvs {
		if err := sameAnnouncements(r.announcements(), want); err != nil {
			t.Errorf("receiver %s: %v", r.name, err)
		}
	}
}

// attempts publishes failed logins from..to-1 of a brute force from ip
// against one user of its own, each event its own message, stamped now.
// A publish is retried until JetStream stores it: while a NATS node
// stops, the stream's leader moves and a publish can fail; the message id
// keeps a retried event from being stored twice.
func (c *client) attempts(t testing.TB, ip string, from, to int) {
	t.Helper()
	var ev event.Event
	for i := from; i < to; i++ {
		loginFailure(&ev, ip, i, time.Now())
		ev.User = "user-" + ip
		m := eventMsg(&ev)
		testkit.WaitFor(t, 30*time.Second, "the event stored", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := c.js.PublishMsg(ctx, m)
			return err
		})
	}
}

// activeMember waits until exactly one running member reports
// vigil_cluster_active 1, and returns its index.
func activeMember(t testing.TB, members []*vigil) int {
	t.Helper()
	active := -1
	testkit.WaitFor(t, 20*time.Second, "one active member", func() error {
		active = -1
		for i, v := range members {
			if v.p.exited() {
				continue
			}
			m, err := v.metrics()
			if err != nil {
				return err
			}
			if m["vigil_cluster_active"] != 1 {
				continue
			}
			if active >= 0 {
				return fmt.Errorf("m%d and m%d both active", active+1, i+1)
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

// natsCluster is nats-server processes forming one NATS cluster with
// JetStream.
type natsCluster struct {
	nodes []*natsServer
}

// startNATSCluster starts n nats-server processes, n1 to nn, routed to each
// other, and waits until JetStream can place a stream on all of them.
func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	clusterAddrs := make([]string, n)
	routes := make([]string, n)
	for i := range n {
		clusterAddrs[i] = freeAddr(t)
		routes[i] = fmt.Sprintf("%q", "nats-route://"+clusterAddrs[i])
	}
	c := &natsCluster{}
	for i := range n {
		s := &natsServer{t: t, name: fmt.Sprintf("n%d", i+1), addr: freeAddr(t), store: t.TempDir()}
		s.conf = filepath.Join(s.store, "nats.conf")
		conf := fmt.Sprintf("server_name: %s\nlisten: %q\njetstream { store_dir: %q }\n"+
			"cluster { name: vigil-e2e, listen: %q, routes: [%s] }\n",
			s.name, s.addr, s.store, clusterAddrs[i], strings.Join(routes, ", "))
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.start()
		c.nodes = append(c.nodes, s)
	}
	c.waitJetStream(t)
	return c
}

// urls are the client URLs of every node, comma-separated, as nats.url
// takes them.
func (c *natsCluster) urls() string {
	var urls []string
	for _, s := range c.nodes {
		urls = append(urls, s.url())
	}
	return strings.Join(urls, ",")
}

// waitJetStream waits until a stream with a replica on every node can be
// created: the nodes have elected a JetStream meta leader and all joined it.
func (c *natsCluster) waitJetStream(t testing.TB) {
	t.Helper()
	cl := connect(t, c.urls())
	defer cl.nc.Close()
	cfg := jetstream.StreamConfig{Name: "E2E_READY", Subjects: []string{"e2e.ready"}, Replicas: len(c.nodes)}
	testkit.WaitFor(t, 30*time.Second, "JetStream placing a stream on every NATS node", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cl.js.CreateStream(ctx, cfg); err != nil {
			return err
		}
		return cl.js.DeleteStream(ctx, cfg.Name)
	})
}

// consumerLeader returns the node leading Vigil's events consumer.
func (c *natsCluster) consumerLeader(t testing.TB, cl *client) *natsServer {
	t.Helper()
	_, ci := cl.streamInfo(t)
	if ci.Cluster != nil {
		for _, s := range c.nodes {
			if s.name == ci.Cluster.Leader {
				return s
			}
		}
	}
	t.Fatalf("the events consumer has no leader among the nodes: %+v", ci.Cluster)
	return nil
}
