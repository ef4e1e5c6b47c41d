package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// member is one Vigil of the cluster test, run as compose runs it.
type member struct {
	name, addr string
	proc       *process
}

// startMember runs `vigil run` as compose runs vigil-1 and vigil-2: with
// compose/vigil.yaml, only nats.url pointed at the test's NATS cluster and
// cluster.member set to name (compose sets the host name instead).
func startMember(t *testing.T, bin, name string, c natsCluster) member {
	t.Helper()
	var cfg map[string]any
	readYAML(t, "compose/vigil.yaml", &cfg)
	cfg["nats"].(map[string]any)["url"] = c.url
	cfg["cluster"].(map[string]any)["member"] = name
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	m := member{name: name, addr: "127.0.0.1:" + strconv.Itoa(freePort(t))}
	m.proc = startProcess(t, name, bin, []string{"VIGIL_NATS_PASSWORD=" + c.passwords["vigil"]},
		"run", "--config", file, "--listen", m.addr, "--data-dir", filepath.Join(dir, "data"))
	return m
}

// bruteForceAsBilling publishes, as svc-billing, eight failed logins from ip
// for one user of its own within four seconds, which brute_force_source_ip
// fires on.
func bruteForceAsBilling(t *testing.T, js jetstream.JetStream, ip string) {
	t.Helper()
	now := time.Now().UTC()
	for i := range 8 {
		ev := fmt.Sprintf(`{"ts":%q,"service":"billing","request_id":"%s-%d","method":"POST","endpoint":"/v1/auth/login","status":401,"source_ip":%q,"user":"user-%s"}`,
			now.Add(time.Duration(i-8)*500*time.Millisecond).Format(time.RFC3339Nano), ip, i, ip, ip)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := js.Publish(ctx, "vigil.events.billing", []byte(ev))
		cancel()
		if err != nil {
			t.Fatalf("svc-billing publishes: %v", err)
		}
	}
}

// pages counts the console receiver's firing notifications of
// brute_force_source_ip for ip in the members' logs.
func pages(ms []member, ip string) int {
	n := 0
	for _, m := range ms {
		for _, l := range lines(tail(m.proc.log, 100000)) {
			if strings.Contains(l, `"kind":"firing"`) && strings.Contains(l, `"rule":"brute_force_source_ip"`) &&
				strings.Contains(l, `"source_ip":"`+ip+`"`) {
				n++
			}
		}
	}
	return n
}

// TestLiveCluster runs the compose stack's high-availability layout with
// real binaries: two `vigil run` members with compose/vigil.yaml on three
// nats-servers of nats/nats-cluster.conf, as the kit's users, and
// Prometheus scraping both with the kit's alerting rules. Both members must
// be ready (a rolling update waits for that), exactly one active; an attack
// is announced once; every rule evaluates, with every metric it uses
// exported; when the active member is killed the standby takes over and
// announces the next attack.
func TestLiveCluster(t *testing.T) {
	promBin := needTool(t, "prometheus")
	bin := buildVigil(t)
	c := startNATSCluster(t)
	// One after the other, as compose starts them: on a first start the
	// members create Vigil's streams, and two members doing that at once
	// on a NATS cluster can time out (see compose.yaml's vigil-2).
	var ms []member
	for _, name := range []string{"vigil-1", "vigil-2"} {
		m := startMember(t, bin, name, c)
		waitHTTP(t, m.proc, "http://"+m.addr+"/readyz", time.Minute)
		ms = append(ms, m)
	}
	s := &stack{bin: bin, started: time.Now(), cluster: true}
	s.prom, s.promProc = startPrometheus(t, promBin, t.TempDir(), ms[0].addr, ms[1].addr)
	s.waitSeries(t, `count(vigil_cluster_members == 2) == 2`, "both members seeing each other")

	js := c.connect(t, "svc-billing").js
	bruteForceAsBilling(t, js, "192.0.2.10")
	s.waitSeries(t, `sum(vigil_cluster_active) == 1 and count(vigil_cluster_active) == 2`, "one active member of two")
	active := activeMember(t, s, ms)
	standby := ms[1-active]
	s.waitSeries(t, `vigil_events_received_total{instance="`+ms[active].addr+`"} == 8`, "the active member applying the attack")
	s.waitSeries(t, `vigil_events_received_total{instance="`+standby.addr+`"} == 0`, "the standby counting no event")
	testkit.WaitFor(t, 30*time.Second, "the attack announced", func() error {
		if n := pages(ms, "192.0.2.10"); n != 1 {
			return fmt.Errorf("%d announcements, want 1", n)
		}
		return nil
	})
	if status, _, err := httpGet("http://"+standby.addr+"/readyz", ""); err != nil || status != http.StatusOK {
		t.Errorf("the standby's /readyz: %d %v, want 200: a rollout waits for new pods to be ready", status, err)
	}
	t.Run("alerting rules", s.checkRules)

	// The active member dies; the standby takes over within
	// cluster.failover_after and announces the next attack.
	killed := time.Now()
	if err := ms[active].proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	bruteForceAsBilling(t, js, "198.51.100.20")
	s.waitSeries(t, `vigil_cluster_active{instance="`+standby.addr+`"} == 1`, "the standby taking over")
	testkit.WaitFor(t, 30*time.Second, "the next attack announced by the new active member", func() error {
		if n := pages([]member{standby}, "198.51.100.20"); n != 1 {
			return fmt.Errorf("%d announcements, want 1", n)
		}
		return nil
	})
	t.Logf("failover: the next attack announced %s after the active member was killed", time.Since(killed).Round(100*time.Millisecond))
	if n := pages(ms, "192.0.2.10"); n != 1 {
		t.Errorf("the first attack was announced %d times in all, want once", n)
	}
}

// activeMember returns the index of the member Prometheus sees active.
func activeMember(t *testing.T, s *stack, ms []member) int {
	t.Helper()
	for i, m := range ms {
		if n, err := s.series(`vigil_cluster_active{instance="` + m.addr + `"} == 1`); err != nil {
			t.Fatal(err)
		} else if n == 1 {
			return i
		}
	}
	t.Fatal("no member active")
	return -1
}
