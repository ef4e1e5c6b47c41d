package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/admin"
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
func startMember(t *testing.T, bin, name string, c natsCluster, tokenHash string) member {
	t.Helper()
	var cfg map[string]any
	readYAML(t, "compose/vigil.yaml", &cfg)
	cfg["nats"].(map[string]any)["url"] = c.url
	cfg["cluster"].(map[string]any)["member"] = name
	cfg["admin"] = map[string]any{"tokens": []any{map[string]any{"name": "ops", "sha256": tokenHash, "scopes": []any{"write"}}}}
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
// real binaries: `vigil run` members with compose/vigil.yaml on three
// nats-servers of nats/nats-cluster.conf, as the kit's users, and
// Prometheus scraping them with the kit's alerting rules. Three members, as
// Kubernetes runs them (compose runs two of the same). Every member must be
// ready (a rolling update waits for that), exactly one active; an attack is
// announced once; every rule evaluates, with every metric it uses exported.
// Every dashboard panel on the cluster's metrics returns data. Then the
// active member is stopped (docker compose stop, a rollout, an
// eviction): a standby takes over at once; and the next active member is
// killed: the last takes over within cluster.failover_after. Each attack is
// announced once in all.
func TestLiveCluster(t *testing.T) {
	promBin := needTool(t, "prometheus")
	bin := buildVigil(t)
	c := startNATSCluster(t)
	// One after the other, as compose starts them: on a first start the
	// members create Vigil's streams, and two members doing that at once
	// on a NATS cluster can time out (see compose.yaml's vigil-2).
	var ms []member
	var addrs []string
	token, tokenHash := admin.NewToken()
	for _, name := range []string{"vigil-1", "vigil-2", "vigil-3"} {
		m := startMember(t, bin, name, c, tokenHash)
		waitHTTP(t, m.proc, "http://"+m.addr+"/readyz", time.Minute)
		ms, addrs = append(ms, m), append(addrs, m.addr)
	}
	s := &stack{bin: bin, started: time.Now(), cluster: true}
	s.prom, s.promProc = startPrometheus(t, promBin, t.TempDir(), addrs...)
	s.waitSeries(t, `count(vigil_cluster_members == 3) == 3`, "the members seeing each other")

	// Before any event, a standby wakes the events consumer up (an empty
	// message on vigil.events.vigil-admin, which the shipped NATS config
	// lets Vigil publish on) and one member is active.
	s.waitSeries(t, `sum(vigil_cluster_active) == 1 and sum(vigil_cluster_wakes_total) >= 1`, "one active member before any event")
	js := c.connect(t, "svc-billing").js
	bruteForceAsBilling(t, js, "192.0.2.10")
	s.waitSeries(t, `sum(vigil_cluster_active) == 1 and count(vigil_cluster_active) == 3`, "one active member of three")
	active := activeMember(t, s, ms)
	s.waitSeries(t, `vigil_events_received_total{instance="`+ms[active].addr+`"} == 8`, "the active member applying the attack")
	s.waitSeries(t, `sum(vigil_events_received_total) == 8`, "the standbys counting no event")
	waitPages(t, ms, "192.0.2.10")
	for _, m := range ms {
		if status, _, err := httpGet("http://"+m.addr+"/readyz", ""); err != nil || status != http.StatusOK {
			t.Errorf("%s's /readyz: %d %v, want 200 on every member: a rollout waits for new pods to be ready", m.name, status, err)
		}
	}
	t.Run("alerting rules", s.checkRules)
	t.Run("cluster reload", func(t *testing.T) {
		// Through the shipped NATS permissions: every member answers.
		status, body, err := httpDo(http.MethodPost, "http://"+ms[0].addr+"/api/v1/cluster/reload", token, 30*time.Second)
		if err != nil || status != http.StatusOK {
			t.Fatalf("POST /api/v1/cluster/reload = %d %v: %s", status, err, body)
		}
		for _, name := range []string{"vigil-1", "vigil-2", "vigil-3"} {
			if !strings.Contains(string(body), `{"member":"`+name+`","status":"unchanged"`) {
				t.Errorf("the cluster reload's report does not say %s found nothing new: %s", name, body)
			}
		}
	})

	next, took := handover(t, s, js, ms, active, func(p *process) { p.stop(t) }, "198.51.100.20")
	t.Logf("stop: the next attack announced %s after SIGTERM to the active member", took)
	if took > 5*time.Second {
		t.Errorf("a stopped active member handed over in %s; it should hand the pin on at once, not after failover_after (10s)", took)
	}
	// With a handover behind (the promotion counted it and timed its
	// takeover while Prometheus watched: the first member is promoted by
	// the wake-up, before Prometheus's first scrape), every cluster panel
	// of the health dashboard has something to show; the single
	// instance's live test cannot check them.
	t.Run("cluster panels", s.checkPanels)
	_, took = handover(t, s, js, ms, next, func(p *process) {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
	}, "203.0.113.30")
	t.Logf("kill: the next attack announced %s after SIGKILL of the active member", took)
	for _, ip := range []string{"192.0.2.10", "198.51.100.20", "203.0.113.30"} {
		if n := pages(ms, ip); n != 1 {
			t.Errorf("the attack from %s was announced %d times in all, want once", ip, n)
		}
	}
}

// handover ends the active member ms[active] with end, publishes an attack
// from ip, and waits until another member has announced it; it returns that
// member, now the active one, and how long it took from end.
func handover(t *testing.T, s *stack, js jetstream.JetStream, ms []member, active int, end func(*process), ip string) (int, time.Duration) {
	t.Helper()
	others := slices.Delete(slices.Clone(ms), active, active+1)
	start := time.Now()
	end(ms[active].proc)
	bruteForceAsBilling(t, js, ip)
	waitPages(t, others, ip)
	took := time.Since(start).Round(10 * time.Millisecond)
	for i, m := range ms {
		if i != active && pages([]member{m}, ip) > 0 {
			s.waitSeries(t, `vigil_cluster_active{instance="`+m.addr+`"} == 1`, m.name+" active")
			return i, took
		}
	}
	t.Fatalf("no member announced the attack from %s", ip)
	return -1, 0
}

// waitPages waits until the members have announced the attack from ip.
func waitPages(t *testing.T, ms []member, ip string) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "the attack from "+ip+" announced", func() error {
		if n := pages(ms, ip); n == 0 {
			return fmt.Errorf("not announced yet")
		}
		return nil
	})
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
