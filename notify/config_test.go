package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/notify/alertmanager"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/notify/slack"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// The configuration from the issue, as the daemon would embed it.
const issueYAML = `
receivers:
  - name: oncall-slack
    slack:
      token: ${SLACK_BOT_TOKEN}
      channel: "#security-alerts"
      api_url: http://127.0.0.1:9999/api/
  - name: siem
    webhook:
      url: https://siem.example.com/hooks/vigil
      secret: ${WEBHOOK_SECRET}
  - name: am
    alertmanager:
      urls: [http://127.0.0.1:9093]
  - name: console
    log: {}
routes:
  - match: {severity: [high, critical]}
    receivers: [oncall-slack, siem]
    continue: true
  - receivers: [console]
notify:
  max_elapsed: 30m
`

type daemonConfig struct {
	Config `yaml:",inline"`
}

func decode(t *testing.T, doc string) Config {
	t.Helper()
	cfg := daemonConfig{Config: DefaultConfig()}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return cfg.Config
}

func TestIssueConfigDecodesAndValidates(t *testing.T) {
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1-2-3")
	t.Setenv("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	cfg := decode(t, issueYAML)
	if err := cfg.Validate(false); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := cfg.Routes[0].Match["severity"]; len(got) != 2 || got[1] != "critical" || !cfg.Routes[0].Continue {
		t.Errorf("first route = %+v", cfg.Routes[0])
	}
	if cfg.Receivers[3].Kind() != KindLog || cfg.Receivers[2].Alertmanager.URLs[0] != "http://127.0.0.1:9093" {
		t.Errorf("receivers = %+v", cfg.Receivers)
	}
	if cfg.Notify.MaxElapsed != 30*time.Minute || cfg.Notify.AttemptTimeout != 10*time.Second {
		t.Errorf("settings = %+v, want max_elapsed from YAML and defaults elsewhere", cfg.Notify)
	}
	if got := cfg.Receivers[0].Slack.Token.Value(); got != "xoxb-1-2-3" {
		t.Errorf("token = %q, want it from the environment", got)
	}
}

func TestUnknownKeysAreRejected(t *testing.T) {
	for _, tc := range []struct{ doc, key string }{
		{"receivers:\n  - name: x\n    slak: {}\n", "slak"},
		// nats.replicas is the one replicas setting.
		{"notify:\n  replicas: 3\n", "replicas"},
	} {
		cfg := daemonConfig{Config: DefaultConfig()}
		dec := yaml.NewDecoder(strings.NewReader(tc.doc))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("err = %v, want the unknown key %s named", err, tc.key)
		}
	}
}

func validConfig() Config {
	c := DefaultConfig()
	c.Receivers = []ReceiverConfig{
		{Name: "console", Log: &jsonlog.Config{}},
		{Name: "siem", Webhook: &webhook.Config{URL: "https://siem.example.com/hook"}},
	}
	c.Routes = []RouteConfig{
		{Match: map[string]StringList{"severity": {"high"}}, Receivers: []string{"siem"}},
		{Receivers: []string{"console"}},
	}
	return c
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("xoxb-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const leaked = "xoxb-MUST-NOT-LEAK"
	slackWith := func(sc slack.Config) func(*Config) {
		return func(c *Config) { c.Receivers[0] = ReceiverConfig{Name: "console", Slack: &sc} }
	}
	cases := []struct {
		name        string
		edit        func(*Config)
		allowInline bool
		wantErr     string // "" means valid
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "unknown receiver", edit: func(c *Config) { c.Routes[0].Receivers = []string{"sime"} }, wantErr: `unknown receiver "sime"`},
		{name: "missing default route", edit: func(c *Config) { c.Routes = c.Routes[:1] }, wantErr: "no default route"},
		{name: "no routes", edit: func(c *Config) { c.Routes = nil }, wantErr: "routes: none configured"},
		{name: "route after catch-all", edit: func(c *Config) {
			c.Routes = append([]RouteConfig{{Receivers: []string{"console"}}}, c.Routes...)
		}, wantErr: "routes[1] is unreachable: routes[0]"},
		{name: "route shadowed by a wider match", edit: func(c *Config) {
			c.Routes = append([]RouteConfig{{Match: map[string]StringList{"severity": {"high", "critical"}}, Receivers: []string{"siem"}}}, c.Routes...)
		}, wantErr: "routes[1] is unreachable"},
		{name: "continue keeps later routes reachable", edit: func(c *Config) {
			c.Routes = append([]RouteConfig{{Receivers: []string{"console"}, Continue: true}}, c.Routes...)
		}},
		{name: "bad match_re", edit: func(c *Config) { c.Routes[0].MatchRE = map[string]string{"path": "(("} }, wantErr: "match_re.path"},
		{name: "severity typo", edit: func(c *Config) { c.Routes[0].Match["severity"] = StringList{"hgh"} },
			wantErr: `routes[0].match.severity: "hgh" is not a severity (info, low, medium, high, critical)`},
		{name: "severity typo in a list", edit: func(c *Config) { c.Routes[0].Match["severity"] = StringList{"high", "critcal"} },
			wantErr: `"critcal" is not a severity`},
		{name: "severity regex matching none", edit: func(c *Config) { c.Routes[0].MatchRE = map[string]string{"severity": "urgent|p[0-9]"} },
			wantErr: `routes[0].match_re.severity: "urgent|p[0-9]" can match no severity`},
		{name: "severity regex matching some", edit: func(c *Config) { c.Routes[0].MatchRE = map[string]string{"severity": "(?i)HIGH|urgent"} }},
		{name: "impossible rule name", edit: func(c *Config) { c.Routes[0].Match = map[string]StringList{"rule": {"Brute-Force"}} },
			wantErr: `"Brute-Force" is not a rule name`},
		{name: "blank category", edit: func(c *Config) { c.Routes[0].Match = map[string]StringList{"category": {" "}} },
			wantErr: `" " is not a category`},
		{name: "rule regex matching no rule name", edit: func(c *Config) { c.Routes[0].MatchRE = map[string]string{"rule": "auth-.*"} },
			wantErr: `"auth-.*" can match no rule name`},
		{name: "label regex matching nothing", edit: func(c *Config) { c.Routes[0].MatchRE = map[string]string{"user": "a^b"} },
			wantErr: `"a^b" can match no value`},
		{name: "incident severity typo", edit: func(c *Config) { c.Routes[0].Match = map[string]StringList{"incident_severity": {"crit"}} },
			wantErr: `routes[0].match.incident_severity: "crit" is not a severity (info, low, medium, high, critical), or empty`},
		{name: "incident severity or none", edit: func(c *Config) {
			c.Routes[0].Match = map[string]StringList{"incident_severity": {"critical", ""}}
			c.Routes[0].PerIncident = true
		}},
		{name: "label value is free", edit: func(c *Config) { c.Routes[0].Match["user"] = StringList{"Bob Smith", ""} }},
		{name: "no receiver kind", edit: func(c *Config) { c.Receivers[0].Log = nil }, wantErr: "set exactly one of"},
		{name: "two receiver kinds", edit: func(c *Config) {
			c.Receivers[0].Alertmanager = &alertmanager.Config{URLs: []string{"http://127.0.0.1:9093"}}
		}, wantErr: "set exactly one of"},
		{name: "bad name", edit: func(c *Config) { c.Receivers[0].Name = "on call"; c.Routes[1].Receivers = []string{"on call"} }, wantErr: "name: want 1 to 64"},
		{name: "duplicate name", edit: func(c *Config) { c.Receivers[1].Name = "console" }, wantErr: "used twice"},
		{name: "inline secret refused", edit: slackWith(slack.Config{Token: inline(leaked), Channel: "#a"}), wantErr: "written inline"},
		{name: "inline secret allowed", edit: slackWith(slack.Config{Token: inline(leaked), Channel: "#a"}), allowInline: true},
		{name: "token_file read", edit: slackWith(slack.Config{TokenFile: tokenFile, Channel: "#a"})},
		{name: "token_file missing", edit: slackWith(slack.Config{TokenFile: filepath.Join(dir, "nope"), Channel: "#a"}), wantErr: "token_file"},
		{name: "token and token_file", edit: slackWith(slack.Config{Token: inline(leaked), TokenFile: tokenFile, Channel: "#a"}), allowInline: true, wantErr: "keep one"},
		{name: "token and webhook_url", edit: slackWith(slack.Config{Token: inline(leaked), WebhookURL: inline("https://hooks.slack.com/services/" + leaked)}), allowInline: true, wantErr: "both set"},
		{name: "token without channel", edit: slackWith(slack.Config{TokenFile: tokenFile}), wantErr: "channel is required"},
		{name: "bad on_resolve", edit: slackWith(slack.Config{TokenFile: tokenFile, Channel: "#a", OnResolve: "delete"}), wantErr: "on_resolve"},
		{name: "bad link template", edit: slackWith(slack.Config{TokenFile: tokenFile, Channel: "#a", Links: []slack.Link{{Text: "G", URL: "{{.Rule"}}}), wantErr: "links[0].url"},
		{name: "link not http", edit: slackWith(slack.Config{TokenFile: tokenFile, Channel: "#a", Links: []slack.Link{{Text: "G", URL: "javascript:alert({{.Rule}})"}}}), wantErr: "absolute http"},
		{name: "webhook secret without prefix", edit: func(c *Config) { c.Receivers[1].Webhook.Secret = inline("c2VjcmV0") }, allowInline: true, wantErr: `must start with "whsec_"`},
		{name: "webhook secret too short", edit: func(c *Config) { c.Receivers[1].Webhook.Secret = inline("whsec_c2VjcmV0") }, allowInline: true, wantErr: "want 24 to 64"},
		{name: "webhook url missing", edit: func(c *Config) { c.Receivers[1].Webhook.URL = "" }, wantErr: "url is required"},
		{name: "alertmanager without urls", edit: func(c *Config) { c.Receivers[1] = ReceiverConfig{Name: "siem", Alertmanager: &alertmanager.Config{}} }, wantErr: "list at least one Alertmanager"},
		{name: "bad rate limit", edit: func(c *Config) { c.Receivers[1].RateLimit = &RateLimit{PerSecond: 0, Burst: 1} }, wantErr: "rate_limit"},
		{name: "ack_wait too short", edit: func(c *Config) { c.Notify.AckWait = 500 * time.Millisecond }, wantErr: "ack_wait is 500ms; set it to at least 1s"},
		{name: "resolved state forgotten within the duplicate window", edit: func(c *Config) { c.Notify.ResolvedRetention = c.Notify.DuplicateWindow }, wantErr: "resolved_retention must exceed duplicate_window"},
		{name: "zero settings", edit: func(c *Config) { c.Notify = Settings{} }, wantErr: "max_elapsed must be a positive duration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate(tc.allowInline)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), leaked):
				t.Fatalf("error reveals a secret: %v", err)
			}
		})
	}
}

func inline(v string) secret.Secret {
	s, err := secret.FromString(v, func(string) (string, bool) { return "", false })
	if err != nil {
		panic(err)
	}
	return s
}

func TestRateLimitDefaultsAreSettings(t *testing.T) {
	cfg := decode(t, `
receivers: [{name: console, log: {}}]
routes: [{receivers: [console]}]
notify:
  rate_limits:
    slack: {per_second: 2}
`)
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	want := KindRates{
		Slack:        RateLimit{PerSecond: 2, Burst: 3},
		Webhook:      RateLimit{PerSecond: 10, Burst: 10},
		Alertmanager: RateLimit{PerSecond: 10, Burst: 10},
	}
	if cfg.Notify.RateLimits != want {
		t.Errorf("rate_limits = %+v, want %+v (slack's per_second from YAML, the rest defaults)", cfg.Notify.RateLimits, want)
	}
	cfg.Notify.RateLimits.Webhook.Burst = 0
	if err := cfg.Validate(false); err == nil || !strings.Contains(err.Error(), "notify: rate_limits.webhook: per_second must be > 0 and burst >= 1") {
		t.Errorf("Validate = %v, want rate_limits.webhook refused", err)
	}
}
