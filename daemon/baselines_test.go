package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/privacy"
)

// baselineRules has one baseline rule over a service and one over a user,
// whose group a pseudonymising daemon must not name in the API.
const baselineRules = `rules:
  - name: slow_service
    description: A service's p95 latency is three times its normal.
    severity: medium
    category: availability
    of: "true"
    group_by: [service]
    when:
      window: 1m
      percentile: {field: latency_ms, p: 95, min: 50, baseline: {factor: 3, period: 1h, min_history: 15m}}
    summary: slow
  - name: user_paths
    description: One user asks for many more distinct paths than usual.
    severity: low
    category: reconnaissance
    of: "true"
    group_by: [user]
    when:
      window: 1m
      distinct: {field: path, min: 50, baseline: {factor: 3, period: 1h, min_history: 15m}}
    summary: many paths
`

// TestBaselinesAPI checks that GET /api/v1/baselines lists the baselines of
// the running engine, warming up, with labels pseudonymised as alerts'.
func TestBaselinesAPI(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), baselineRules)
	cfg.Detect.Rules = dir
	keyFile := filepath.Join(t.TempDir(), "key")
	writeFile(t, keyFile, "0123456789abcdef0123456789abcdef-test-key")
	cfg.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldUser}, KeyFile: keyFile}
	tok, hash := admin.NewToken()
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeRead}}}
	r := startDaemonWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard})
	api := apiClient{t: t, base: "http://" + r.d.Addr().String(), token: tok}

	_, js := connectJS(t, r.d.NATSURL())
	now := time.Now()
	for i := range 200 {
		ev := event.Event{
			Time: now.Add(time.Duration(i-200) * 10 * time.Millisecond), Service: "billing",
			RequestID: fmt.Sprintf("req-%d", i), Method: "GET", Endpoint: "/v1/invoices/{id}", Path: fmt.Sprintf("/v1/invoices/%d", i), Status: 200,
			LatencyMS: float64(1 + i*i%5000), HasLatency: true, User: "alice@example.com",
		}
		publish(t, js, "vigil.events.billing", ev.RequestID, ev.AppendJSON(nil))
	}
	byRule := func(query string) map[string]detect.BaselineStat {
		var got struct {
			Baselines []detect.BaselineStat `json:"baselines"`
		}
		if err := json.Unmarshal(getJSON(t, api, "/api/v1/baselines"+query), &got); err != nil {
			t.Fatal(err)
		}
		m := map[string]detect.BaselineStat{}
		for _, b := range got.Baselines {
			m[b.Rule] = b
		}
		return m
	}
	var all map[string]detect.BaselineStat
	testkit.WaitFor(t, 15*time.Second, "both rules' baselines listed", func() error {
		if all = byRule(""); len(all) != 2 {
			return fmt.Errorf("baselines of %d rules listed, want 2: %v", len(all), all)
		}
		return nil
	})
	if b := all["slow_service"]; b.Labels["service"] != "billing" || b.Check != "percentile" || b.Ready || b.Threshold != 0 {
		t.Errorf("baseline = %+v; want slow_service's percentile baseline of billing, not ready after seconds of history", b)
	}
	if b := all["user_paths"]; b.Check != "distinct" || b.Labels["user"] == "" || b.Labels["user"] == "alice@example.com" {
		t.Errorf("baseline = %+v; want user_paths' baseline of a pseudonymised user", b)
	}
	if one := byRule("?rule=user_paths"); len(one) != 1 || one["user_paths"].Rule == "" {
		t.Errorf("?rule=user_paths lists %v, want that rule's baseline only", one)
	}
}

// getJSON sends an authenticated GET and returns the body of its 200 answer.
func getJSON(t *testing.T, c apiClient, path string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v: %s", path, resp.StatusCode, err, b)
	}
	return b
}
