package daemon

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/simulate"
)

const canaryConfig = `
allow_inline_secrets: false
nats:
  user: vigil
  password: ${CANARY_NATS_PASSWORD}
receivers:
  - name: hook
    webhook:
      url: %s/hook
      secret: ${CANARY_WEBHOOK_SECRET}
  - name: chat
    slack:
      token: ${CANARY_SLACK_TOKEN}
      channel: "#sec"
      api_url: %s/api/
routes:
  - receivers: [hook, chat]
notify:
  initial_backoff: 10ms
  max_backoff: 50ms
admin:
  tokens:
    - name: oncall
      sha256: %s
      scopes: [admin]
privacy:
  pseudonymize: [source_ip, user]
  key_file: %s
`

// TestCanarySecretsNeverLeak plants recognisable values in every secret and
// runs the daemon through start, attack traffic, failing receivers, bad and
// good reloads and failed logins; none may appear in logs, metrics, API
// responses or error messages.
func TestCanarySecretsNeverLeak(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer failing.Close()

	webhookKey := "CANARY-webhook-key-5b1e-0123456789"
	canaries := map[string]string{
		"nats password":   "CANARY-nats-pw-8c2d",
		"slack token":     "xoxb-CANARY-slack-9f4e",
		"webhook secret":  "whsec_" + base64.StdEncoding.EncodeToString([]byte(webhookKey)),
		"webhook key":     webhookKey,
		"privacy key":     "CANARY-privacy-key-0123456789abcdef0123456789abcdef",
		"wrong api token": "vigil_CANARY-not-a-real-token",
	}
	t.Setenv("CANARY_NATS_PASSWORD", canaries["nats password"])
	t.Setenv("CANARY_SLACK_TOKEN", canaries["slack token"])
	t.Setenv("CANARY_WEBHOOK_SECRET", canaries["webhook secret"])
	token, hash := admin.NewToken()
	canaries["admin token"] = token

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "privacy.key")
	if err := os.WriteFile(keyFile, []byte(canaries["privacy key"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "vigil.yaml")
	good := fmt.Sprintf(canaryConfig, failing.URL, failing.URL, hash, keyFile)
	writeFile(t, cfgFile, good)
	base := testConfig(t)
	load := func() (config.Config, []byte, error) {
		cfg, raw, err := config.Load(cfgFile)
		if err != nil {
			return cfg, raw, err
		}
		cfg.Listen, cfg.NATS.Listen, cfg.DataDir, cfg.Ingest.FetchWait = base.Listen, base.NATS.Listen, base.DataDir, base.Ingest.FetchWait
		return cfg, raw, cfg.Validate()
	}
	cfg, raw, err := load()
	if err != nil {
		t.Fatal(err)
	}
	var logs testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Stdout: &logs, RawConfig: raw, Load: load,
	})
	var seen strings.Builder
	api := apiClient{t: t, base: "http://" + r.d.Addr().String(), token: token}

	publishAttack(t, r.d.NATSURL(), 60)
	testkit.WaitFor(t, 20*time.Second, "both receivers failing and retried", func() error {
		for _, recv := range []string{"hook", "chat"} {
			if metric(t, r.d.Registry(), "vigil_notifications_total", "receiver", recv, "outcome", "retried") == 0 {
				return fmt.Errorf("no retried delivery to %s yet", recv)
			}
		}
		return nil
	})
	for _, path := range []string{"/api/v1/status", "/api/v1/alerts", "/api/v1/rules", "/api/v1/silences", "/metrics"} {
		seen.WriteString(api.do("GET", path, "", http.StatusOK))
	}
	seen.WriteString(apiClient{t: t, base: api.base, token: canaries["wrong api token"]}.do("GET", "/api/v1/status", "", http.StatusUnauthorized))

	t.Setenv("CANARY_WEBHOOK_SECRET", "whsec_"+canaries["privacy key"]+"!!") // not base64: the reload must fail
	seen.WriteString(api.do("POST", "/api/v1/reload", "", http.StatusUnprocessableEntity))
	t.Setenv("CANARY_WEBHOOK_SECRET", canaries["webhook secret"])
	writeFile(t, cfgFile, good+"\n# reloaded\n")
	seen.WriteString(api.do("POST", "/api/v1/reload", "", http.StatusOK))
	r.stop()

	outputs := map[string]string{"logs and stdout": logs.String(), "API and metrics": seen.String()}
	for where, text := range outputs {
		for name, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("%s contain the %s", where, name)
			}
		}
	}
	if !strings.Contains(logs.String(), "config reload failed") {
		t.Errorf("the failed reload was not logged; the canary check above would be vacuous")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// attack is what publishAttack sent: a brute force from one address.
type attack struct {
	addr     netip.Addr // the attacking address
	personal []string   // every address and user name its events carry
}

// publishAttack publishes n brute-force login failures from one address,
// made by the simulator, and returns what they carry, so that tests check
// for the data actually sent rather than for values the simulator may no
// longer produce.
func publishAttack(t *testing.T, natsURL string, n int) attack {
	t.Helper()
	_, js := connectJS(t, natsURL)
	gen := simulate.NewGenerator(7, nil)
	var ev event.Event
	var a attack
	now := time.Now()
	for i := range n {
		gen.Attack(simulate.BruteForce, now.Add(time.Duration(i-n)*10*time.Millisecond), &ev) // within the 5 s lateness
		if i == 0 {
			a.addr = ev.SourceIP
		}
		if ev.SourceIP != a.addr || ev.User == "" {
			t.Fatalf("the simulated brute force is not one address guessing named users: %s", ev.AppendJSON(nil))
		}
		for _, v := range []string{ev.SourceIP.String(), ev.User} {
			if !slices.Contains(a.personal, v) {
				a.personal = append(a.personal, v)
			}
		}
		publish(t, js, "vigil.events."+ev.Service, ev.RequestID, ev.AppendJSON(nil))
	}
	return a
}

type apiClient struct {
	t           *testing.T
	base, token string
}

// do sends a request and checks its status; it returns the response's
// headers and body as text.
func (c apiClient) do(method, path, body string, want int) string {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	return fmt.Sprint(resp.Header) + string(b)
}
