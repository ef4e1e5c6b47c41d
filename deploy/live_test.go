package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The proof of the dashboards and alerting rules: a real Vigil with
// simulated attack traffic, a real Prometheus scraping it every second, and
// every panel query and alerting rule evaluated through Prometheus's API.

// liveToken is the admin token of the live test's config (read scope).
const liveToken = "vigil-live-test-token"

// liveConfig is the Vigil config of the live test: a log receiver and a
// default route, so notification metrics appear, and one admin token, so the
// admin API answers both 200 and 401. %s is the token's SHA-256.
const liveConfig = `log:
  level: info
  format: json
receivers:
  - name: console
    log: {}
routes:
  - receivers: [console]
admin:
  tokens:
    - name: live-test
      sha256: %s
      scopes: [read]
`

// stack is Vigil (with its embedded NATS) and Prometheus scraping it.
type stack struct {
	bin                     string
	vigilURL, natsURL, prom string
	vigilProc, promProc     *process
	started                 time.Time
	// cluster says whether the Vigils run as cluster members, which export
	// the vigil_cluster_* metrics that some rules use.
	cluster bool
}

func startStack(t *testing.T, vigilBin, promBin string) *stack {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(liveToken))
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, liveConfig, hex.EncodeToString(sum[:])), 0o600); err != nil {
		t.Fatal(err)
	}
	vigilAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	natsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	s := &stack{bin: vigilBin, vigilURL: "http://" + vigilAddr, natsURL: "nats://" + natsAddr, started: time.Now()}
	s.vigilProc = startProcess(t, "vigil", vigilBin, nil, "run", "--config", cfg,
		"--listen", vigilAddr, "--nats-listen", natsAddr, "--data-dir", filepath.Join(dir, "data"))
	waitHTTP(t, s.vigilProc, s.vigilURL+"/readyz", time.Minute)

	s.prom, s.promProc = startPrometheus(t, promBin, dir, vigilAddr)
	s.waitSeries(t, `up{job="vigil"} == 1`, "Prometheus's first scrape of Vigil")
	return s
}

// startPrometheus runs Prometheus with the kit's alerting rules, scraping
// the Vigils at targets every second as job vigil, and returns its URL.
func startPrometheus(t *testing.T, promBin, dir string, targets ...string) (string, *process) {
	t.Helper()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	promCfg := filepath.Join(dir, "prometheus.yml")
	promYAML := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: vigil
    static_configs: [{targets: [%s]}]
`, rules, strings.Join(quoted, ", "))
	if err := os.WriteFile(promCfg, []byte(promYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	proc := startProcess(t, "prometheus", promBin, nil, "--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr, "--log.level=warn")
	waitHTTP(t, proc, "http://"+promAddr+"/-/ready", 30*time.Second)
	return "http://" + promAddr, proc
}

// simulate publishes ordinary traffic and every attack kind for a few seconds.
func (s *stack) simulate(t *testing.T) {
	t.Helper()
	out, err := run(t, time.Minute, ".", nil, s.bin, "simulate", "--nats-url", s.natsURL,
		"--rate", "300", "--duration", "6s", "--attack-rate", "20", "--warmup", "1s", "--seed", "7",
		"--attack", "brute-force,credential-stuffing,distributed,error-spike")
	if err != nil {
		t.Fatalf("vigil simulate: %v\n%s", err, out)
	}
}

// exerciseEdges causes the series that ordinary traffic does not: a rejected
// event, a late event, and admin requests with and without a valid token.
func (s *stack) exerciseEdges(t *testing.T) {
	t.Helper()
	nc, err := nats.Connect(s.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	late := fmt.Sprintf(`{"ts":%q,"service":"live-test","request_id":"late-1","method":"GET","endpoint":"/v1/ping","status":200}`,
		time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	for _, msg := range []string{`{"bogus":true}`, late} {
		if err := nc.Publish("vigil.events.live-test", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "not-a-token", http.StatusUnauthorized},
		{"read token", liveToken, http.StatusOK},
	}
	for _, tt := range tests {
		status, body, err := httpGet(s.vigilURL+"/api/v1/status", tt.token)
		if err != nil || status != tt.want {
			t.Errorf("GET /api/v1/status with %s: %d %v, want %d\n%s", tt.name, status, err, tt.want, body)
		}
	}
}

// TestLiveDashboardsAndRules is issue 5's proof with real tools: every panel
// query of every dashboard (those in collapsed rows too), with its variables
// substituted as Grafana would, parses and returns at least one series from
// a Prometheus scraping a real Vigil that has seen attack traffic, except
// the queries on vigil_cluster_* metrics, which a single Vigil does not
// export: they must parse, and TestLiveCluster requires their data; every
// alerting rule evaluates without error on that data and uses only metrics
// Vigil exports.
func TestLiveDashboardsAndRules(t *testing.T) {
	t.Parallel()
	promBin := needTool(t, "prometheus")
	s := startStack(t, buildVigil(t), promBin)
	s.simulate(t)
	s.exerciseEdges(t)
	t.Run("detection fired", func(t *testing.T) {
		s.waitSeries(t, `sum(vigil_alerts_total{state="firing"}) > 0`, "an alert fired by the simulated attacks")
	})
	t.Run("panels", s.checkPanels)
	t.Run("alerting rules", s.checkRules)
}

// TestShippedVigilConfigs runs `vigil config check` on every Vigil config the
// kit ships, so none of them drifts from what the daemon accepts. The
// Kubernetes config is checked with the rules ConfigMap laid out as the pod
// sees it.
func TestShippedVigilConfigs(t *testing.T) {
	t.Parallel()
	bin := buildVigil(t)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, "kubernetes/configmap.yaml", &cm)
	dir := t.TempDir()
	rules := writeRulesConfigMap(t, filepath.Join(dir, "rules"))
	k8s := filepath.Join(dir, "vigil.yaml")
	conf := strings.ReplaceAll(cm.Data["vigil.yaml"], "/etc/vigil/rules", rules)
	if err := os.WriteFile(k8s, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the secret the configs require: the optional ones stay unset.
	env := []string{"VIGIL_NATS_PASSWORD=config-check"}
	tests := []struct{ name, file string }{
		{"systemd", "systemd/vigil.yaml"},
		{"compose", "compose/vigil.yaml"},
		{"kubernetes", k8s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, time.Minute, ".", env, bin, "config", "check", "--config", tt.file)
			if err != nil {
				t.Errorf("vigil config check --config %s: %v\n%s", tt.file, err, out)
			}
		})
	}
}

// writeRulesConfigMap writes the rule files of the generated rules ConfigMap
// into dir, as Kubernetes mounts them, and returns dir.
func writeRulesConfigMap(t *testing.T, dir string) string {
	t.Helper()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, "kubernetes/rules-configmap.yaml", &cm)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
