package deploy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// natsCluster is three nats-servers running in the test process from
// nats/nats-cluster.conf, routed to each other on loopback.
type natsCluster struct {
	natsServer    // url lists the three nodes' client URLs
	nodes         []*server.Server
	routePassword string
}

// startNATSCluster starts three nodes from nats/nats-cluster.conf with the
// environment compose gives them (node name, route password, the three
// route URLs), random passwords, and loopback ports; the routes and their
// authorization are the file's own. It returns once JetStream has a meta
// leader that all three follow, which takes routes that authenticate.
func startNATSCluster(t *testing.T) natsCluster {
	t.Helper()
	c := natsCluster{natsServer: natsServer{passwords: natsPasswords(t)}, routePassword: randomHex(t)}
	t.Setenv("NATS_ROUTE_PASSWORD", c.routePassword)
	ports := make([]int, 3)
	for i := range ports {
		ports[i] = freePort(t)
		t.Setenv(fmt.Sprintf("NATS_ROUTE_%d", i+1), fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", c.routePassword, ports[i]))
	}
	var urls []string
	for i, port := range ports {
		t.Setenv("NATS_SERVER_NAME", fmt.Sprintf("nats-%d", i+1))
		opts := loadNATSConfig(t, "nats/nats-cluster.conf")
		if opts.ServerName != fmt.Sprintf("nats-%d", i+1) || len(opts.Routes) != 3 {
			t.Fatalf("nats/nats-cluster.conf: server_name %q and %d routes, want nats-%d and 3", opts.ServerName, len(opts.Routes), i+1)
		}
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", port
		srv := runNATS(t, opts)
		c.nodes = append(c.nodes, srv)
		urls = append(urls, srv.ClientURL())
	}
	testkit.WaitJetStreamReady(t, c.nodes)
	c.url = strings.Join(urls, ",")
	return c
}

// eachNATS runs test against the single server of nats/nats-server.conf
// and against the cluster of nats/nats-cluster.conf: both must hold the
// same users to the same permissions.
func eachNATS(t *testing.T, test func(t *testing.T, ns natsServer)) {
	t.Run("single server", func(t *testing.T) { test(t, startNATS(t)) })
	t.Run("cluster", func(t *testing.T) { test(t, startNATSCluster(t).natsServer) })
}

// TestNATSClusterRouteNeedsPassword proves that a route connection, which
// would see every account's messages, must present the route password:
// without it, or with a wrong one, the node refuses; with it, it answers.
func TestNATSClusterRouteNeedsPassword(t *testing.T) {
	c := startNATSCluster(t)
	addr := c.nodes[0].ClusterAddr().String()
	tests := []struct {
		name, user, password string
		want                 string
	}{
		{"no credentials", "", "", "-ERR 'Authorization Violation'"},
		{"wrong password", "route", "wrong", "-ERR 'Authorization Violation'"},
		{"the route password", "route", c.routePassword, "PONG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routeConnect(t, addr, tt.user, tt.password); got != tt.want {
				t.Errorf("route CONNECT as %q: the node answered %q, want %q", tt.user, got, tt.want)
			}
		})
	}
}

// routeConnect opens a route connection to addr as a made-up server would,
// sends CONNECT with the credentials and a PING, and returns the node's
// answer: PONG, or the error it closed the connection with.
func routeConnect(t *testing.T, addr, user, password string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if info, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("route port: %q %v, want INFO", info, err)
	}
	fmt.Fprintf(conn, "CONNECT {\"user\":%q,\"pass\":%q,\"cluster\":\"vigil-nats\",\"name\":\"intruder\"}\r\nPING\r\n", user, password)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("route connection: %v before PONG or -ERR", err)
		}
		if line = strings.TrimSpace(line); line == "PONG" || strings.HasPrefix(line, "-ERR") {
			return line
		}
	}
}
