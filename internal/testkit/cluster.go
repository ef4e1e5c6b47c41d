package testkit

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS cluster with JetStream embedded in a test: its nodes
// route to each other on loopback, as nats-server's own cluster tests
// build them, each storing in its own temporary directory.
type Cluster struct {
	t     testing.TB
	opts  []*server.Options // templates: a server changes the options it runs with
	Nodes []*server.Server  // nil once stopped
}

// RunCluster starts a cluster of n nodes and waits until JetStream has a
// meta leader that every node follows. Nodes still running when the test
// ends are shut down.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		ports[i] = freeLoopbackPort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	c := &Cluster{t: t, Nodes: make([]*server.Server, n)}
	for i := range n {
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 1 << 30,
			Cluster: server.ClusterOpts{Name: "vigil-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Stop(i)
		}
	})
	c.WaitReady()
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	s, err := server.NewServer(c.opts[i].Clone())
	if err != nil {
		c.t.Fatalf("nats node %d: %v", i+1, err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("nats node %d not ready in 10s", i+1)
	}
	c.Nodes[i] = s
}

// Stop shuts node i down (its raft leaderships step down first, as on a
// rolling restart).
func (c *Cluster) Stop(i int) {
	if s := c.Nodes[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Nodes[i] = nil
	}
}

// URLs are the client URLs of the running nodes, comma-separated, as a
// NATS client takes them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Nodes {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// WaitReady waits until a running node is the JetStream meta leader and
// every running node is current with it.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	WaitJetStreamReady(c.t, c.Nodes)
}

// WaitJetStreamReady waits until one of nodes (nil ones are stopped) is the
// JetStream meta leader and every running one is current with it: a
// cluster started from configuration files is ready for streams.
func WaitJetStreamReady(t testing.TB, nodes []*server.Server) {
	t.Helper()
	WaitFor(t, 30*time.Second, "the NATS cluster's JetStream ready", func() error {
		var leader *server.Server
		running := 0
		for i, s := range nodes {
			if s == nil {
				continue
			}
			running++
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("node %d not current", i+1)
			}
			if s.JetStreamIsLeader() {
				leader = s
			}
		}
		if leader == nil {
			return fmt.Errorf("no meta leader")
		}
		// Only the leader lists the peers it has heard from.
		if n := len(leader.JetStreamClusterPeers()); n < running {
			return fmt.Errorf("the meta leader sees %d peers of %d", n, running)
		}
		return nil
	})
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
