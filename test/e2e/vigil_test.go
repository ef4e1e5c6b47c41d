package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/rules"
)

// webhookSecret signs every webhook delivery in the suite; receivers check
// each signature with it.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYqr"

// vigilConfig says how to run one vigil daemon.
type vigilConfig struct {
	NATSURL   string            // external NATS; empty runs the embedded server
	Receivers []receiverSpec    // webhook receivers, all on the default route
	Rules     []string          // extra rule files (YAML text) beside the defaults
	OnlyRules bool              // run Rules alone, without the default rules
	Ingest    map[string]string // ingest: keys to override, e.g. "ack_wait": "5s"
	Lateness  time.Duration     // detect.lateness; 1s when zero
	LogLevel  string            // info when empty
	Env       []string          // extra environment, e.g. GOGC=400
	Replicas  int               // nats.replicas; the daemon's default when zero
	Member    string            // cluster.member: set, the daemon is a cluster member (needs NATSURL)
	// FailoverAfter is the cluster's failover_after when Member is set.
	FailoverAfter time.Duration
}

// receiverSpec is one webhook receiver of the daemon's config.
type receiverSpec struct {
	Name string
	URL  string
}

// vigil is a vigil daemon process. Its admin and NATS addresses and data
// directory stay the same across restarts.
type vigil struct {
	t       testing.TB
	cfg     vigilConfig
	admin   string // host:port
	natsAdr string // embedded server's host:port
	dataDir string
	cfgPath string
	p       *proc
	starts  int
}

// newVigil writes the config for cfg and starts the daemon, waiting until
// /readyz answers 200.
func newVigil(t testing.TB, cfg vigilConfig) *vigil {
	t.Helper()
	dir := t.TempDir()
	v := &vigil{t: t, cfg: cfg, admin: freeAddr(t), natsAdr: freeAddr(t),
		dataDir: filepath.Join(dir, "data"), cfgPath: filepath.Join(dir, "vigil.yaml")}
	rulesDir := filepath.Join(dir, "rules")
	if err := writeRules(rulesDir, cfg.Rules, !cfg.OnlyRules); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v.cfgPath, []byte(v.configYAML(rulesDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	v.start()
	return v
}

// writeRules writes the rule files extra into dir, beside a copy of the
// embedded default rules when defaults is set.
func writeRules(dir string, extra []string, defaults bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if defaults {
		err := fs.WalkDir(rules.FS(), ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(rules.FS(), path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
		})
		if err != nil {
			return err
		}
	}
	for i, r := range extra {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("e2e_%d.yaml", i)), []byte(r), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (v *vigil) configYAML(rulesDir string) string {
	var b strings.Builder
	level := v.cfg.LogLevel
	if level == "" {
		level = "info"
	}
	lateness := v.cfg.Lateness
	if lateness == 0 {
		lateness = time.Second
	}
	fmt.Fprintf(&b, "listen: %s\ndata_dir: %s\nlog: {level: %s, format: json}\n", v.admin, v.dataDir, level)
	if v.cfg.NATSURL != "" {
		fmt.Fprintf(&b, "nats: {url: %q", v.cfg.NATSURL)
		if v.cfg.Replicas > 0 {
			fmt.Fprintf(&b, ", replicas: %d", v.cfg.Replicas)
		}
		b.WriteString("}\n")
	} else {
		fmt.Fprintf(&b, "nats: {listen: %s}\n", v.natsAdr)
	}
	if v.cfg.Member != "" {
		fmt.Fprintf(&b, "cluster: {enabled: true, member: %s, failover_after: %s}\n", v.cfg.Member, v.cfg.FailoverAfter)
	}
	fmt.Fprintf(&b, "detect: {lateness: %s, rules: %s}\n", lateness, rulesDir)
	// The suite polls /metrics far more often than Prometheus would.
	b.WriteString("admin: {rate_limit: {requests_per_second: 1000, burst: 1000}}\n")
	b.WriteString("ingest:\n  fetch_wait: 100ms\n")
	for k, val := range v.cfg.Ingest {
		fmt.Fprintf(&b, "  %s: %s\n", k, val)
	}
	b.WriteString("notify: {initial_backoff: 100ms, max_backoff: 1s, flood_limit: 10000}\nreceivers:\n")
	var names []string
	for _, r := range v.cfg.Receivers {
		fmt.Fprintf(&b, "  - name: %s\n    webhook:\n      url: %q\n      secret: ${WEBHOOK_SECRET}\n", r.Name, r.URL)
		b.WriteString("    rate_limit: {per_second: 10000, burst: 10000}\n")
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		b.WriteString("  - name: console\n    log: {}\n")
		names = append(names, "console")
	}
	fmt.Fprintf(&b, "routes:\n  - receivers: [%s]\n", strings.Join(names, ", "))
	return b.String()
}

// start runs the daemon and waits until it is ready.
func (v *vigil) start() {
	v.t.Helper()
	v.starts++
	name := "vigil"
	if v.cfg.Member != "" {
		name += " " + v.cfg.Member
	}
	v.p = startProc(v.t, fmt.Sprintf("%s#%d", name, v.starts), bins.vigil,
		append([]string{"WEBHOOK_SECRET=" + webhookSecret}, v.cfg.Env...),
		"run", "--config", v.cfgPath)
	v.waitReady(60 * time.Second)
}

// waitReady polls /readyz until it answers 200.
func (v *vigil) waitReady(timeout time.Duration) {
	v.t.Helper()
	testkit.WaitFor(v.t, timeout, "vigil /readyz 200", func() error {
		if v.p.exited() {
			v.t.Fatalf("vigil exited: %v", v.p.err)
		}
		code, body := v.get("/readyz")
		if code != http.StatusOK {
			return fmt.Errorf("/readyz %d %s", code, body)
		}
		return nil
	})
}

// natsURL is the client URL of the NATS server the daemon uses.
func (v *vigil) natsURL() string {
	if v.cfg.NATSURL != "" {
		return v.cfg.NATSURL
	}
	return "nats://" + v.natsAdr
}

// kill9 kills the daemon with SIGKILL.
func (v *vigil) kill9() { v.p.kill() }

// stop shuts the daemon down with SIGTERM.
func (v *vigil) stop() { v.p.terminate(60 * time.Second) }

// restart starts the daemon again on the same addresses and data.
func (v *vigil) restart() {
	v.t.Helper()
	if !v.p.exited() {
		v.t.Fatal("restart: vigil is still running")
	}
	v.start()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches an admin path, returning 0 and the error text when the
// daemon does not answer.
func (v *vigil) get(path string) (int, string) {
	resp, err := httpClient.Get("http://" + v.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b)
}

// metrics scrapes /metrics into samples keyed by the series as written,
// e.g. `vigil_events_rejected_total{reason="bad_json"}`.
func (v *vigil) metrics() (map[string]float64, error) {
	resp, err := httpClient.Get("http://" + v.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = f
		}
	}
	return out, sc.Err()
}

// metric returns one series' value, failing t when /metrics cannot be read.
func (v *vigil) metric(series string) float64 {
	v.t.Helper()
	m, err := v.metrics()
	if err != nil {
		v.t.Fatalf("scrape: %v", err)
	}
	return m[series]
}

// sumMetric adds every series of the metric name.
func sumMetric(m map[string]float64, name string) float64 {
	total := 0.0
	for k, val := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += val
		}
	}
	return total
}

// logRecords returns the JSON log records of the current process whose msg
// is msg.
func (v *vigil) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range v.p.logLines(`"msg":"` + msg + `"`) {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}
