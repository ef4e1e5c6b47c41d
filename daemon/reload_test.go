package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/notify/webhook"
	"github.com/vigil-sec/vigil/privacy"
)

func TestReloadKeepsRunningConfigOnError(t *testing.T) {
	base := testConfig(t)
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func() (config.Config, []byte, error) {
		cfg, raw, err := config.Load(path)
		if err != nil {
			return cfg, raw, err
		}
		cfg.Listen, cfg.NATS.Listen, cfg.DataDir, cfg.Ingest.FetchWait = base.Listen, base.NATS.Listen, base.DataDir, base.Ingest.FetchWait
		return cfg, raw, cfg.Validate()
	}
	write("# first\n")
	cfg, raw, err := load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), cfg, Options{RawConfig: raw, Load: load})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	reg := d.Registry()
	firstHash := config.Hash(raw)
	if metric(t, reg, "vigil_config_info", "hash", firstHash) != 1 {
		t.Fatalf("config hash %s not exported at start", firstHash)
	}

	cases := []struct {
		name     string
		file     string
		wantErr  string
		wantHash string
	}{
		{"syntax error keeps old config", "ingest: [\n", "vigil.yaml", firstHash},
		{"unknown key keeps old config", "ingest:\n  bogus: 1\n", "bogus", firstHash},
		{"restart-only change is refused by name", "ingest:\n  max_services: 5\nlog: {format: text}\n", "reload cannot change log.format, ingest.max_services; restart", firstHash},
		{"valid change applies", "# second\n", "", config.Hash([]byte("# second\n"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file)
			err := d.Reload(context.Background())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Reload() = %v, want error containing %q", err, tc.wantErr)
			}
			wantOK := 1.0
			if tc.wantErr != "" {
				wantOK = 0
			}
			if got := metric(t, reg, "vigil_config_last_reload_successful"); got != wantOK {
				t.Errorf("vigil_config_last_reload_successful = %v, want %v", got, wantOK)
			}
			if metric(t, reg, "vigil_config_info", "hash", tc.wantHash) != 1 {
				t.Errorf("config hash in force is not %s", tc.wantHash)
			}
		})
	}
}

// TestNotReloadableNamesEachKey checks that reload refuses every change it
// cannot apply, naming the key, and lets through only the reloadable
// sections: a setting nobody listed is refused, not applied silently.
func TestNotReloadableNamesEachKey(t *testing.T) {
	base := config.Default()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"listen", func(c *config.Config) { c.Listen = "127.0.0.1:1" }, []string{"listen"}},
		{"data dir and log level", func(c *config.Config) { c.DataDir, c.Log.Level = "/x", "debug" }, []string{"data_dir", "log.level"}},
		{"nats", func(c *config.Config) { c.NATS.URL, c.NATS.TLS.CAFile = "nats://x:4222", "/ca" }, []string{"nats.url", "nats.tls.ca_file"}},
		{"ingest", func(c *config.Config) { c.Ingest.MaxServices, c.Ingest.DeadLetterMaxAge = 5, time.Hour },
			[]string{"ingest.dead_letter_max_age", "ingest.max_services"}},
		{"reloadable sections", func(c *config.Config) {
			c.Detect.Lateness, c.AllowInlineSecrets = time.Minute, true
			c.Admin.MetricsAuth = true
			c.Privacy.Pseudonymize = []privacy.Field{privacy.FieldUser}
			c.Notify.Routes = nil
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := base
			cur.Notify.Routes = slices.Clone(base.Notify.Routes)
			tc.change(&cur)
			if got := notReloadable(base, cur); !slices.Equal(got, tc.want) {
				t.Fatalf("notReloadable = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestChangedKeysRefusesUnknownSettings checks the rule behind
// notReloadable on a config type of its own: a key added to any section is
// compared, a nested section key by key, a value type as a whole.
func TestChangedKeysRefusesUnknownSettings(t *testing.T) {
	type secretLike struct{ v string }
	type section struct {
		Known  int        `yaml:"known"`
		Added  []string   `yaml:"added_later"`
		Secret secretLike `yaml:"secret"`
	}
	type cfg struct {
		Top     string  `yaml:"top"`
		Section section `yaml:"section"`
		Inline  section `yaml:",inline"`
		note    string
	}
	a := cfg{Top: "a", Section: section{Known: 1}, note: "a"}
	b := a
	b.Section.Added = []string{"x"}
	b.Section.Secret = secretLike{"changed"}
	b.Inline.Known = 2
	b.note = "b"
	want := []string{"section.added_later", "section.secret", "known"}
	if got := changedKeys(a, b); !slices.Equal(got, want) {
		t.Fatalf("changedKeys = %q, want %q", got, want)
	}
	if got := changedKeys(a, b); !slices.Equal(got, want) {
		t.Fatalf("notReloadable = %q, want %q: keys no one made reloadable are refused", got, want)
	}
}

// TestFailedReloadChangesNothing reloads a config that changes the admin
// tokens and the detection settings, with a context cancelled so that the
// rebuild of the new engine's windows from the stream fails. Nothing may
// be half applied: the old token still works, the new one does not, and
// the old engine stays in force.
func TestFailedReloadChangesNothing(t *testing.T) {
	oldToken, oldHash := admin.NewToken()
	newToken, newHash := admin.NewToken()
	cfg := testConfig(t)
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "old", SHA256: oldHash, Scopes: []admin.Scope{admin.ScopeRead}}}
	next := cfg
	next.Admin.Tokens = []admin.TokenConfig{{Name: "new", SHA256: newHash, Scopes: []admin.Scope{admin.ScopeRead}}}
	next.Detect.Lateness = cfg.Detect.Lateness + time.Second
	load := func() (config.Config, []byte, error) { return next, []byte("next"), next.Validate() }
	r := startDaemonWith(t, cfg, Options{Load: load})
	engine := r.d.detector.engine()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.d.Reload(ctx); err == nil {
		t.Fatal("Reload succeeded though the windows could not be rebuilt")
	}
	base := "http://" + r.d.Addr().String()
	apiClient{t: t, base: base, token: oldToken}.do("GET", "/api/v1/status", "", http.StatusOK)
	apiClient{t: t, base: base, token: newToken}.do("GET", "/api/v1/status", "", http.StatusUnauthorized)
	if r.d.detector.engine() != engine || r.d.detector.state.Load().cfg.Lateness != cfg.Detect.Lateness {
		t.Error("the new engine was put in force by a failed reload")
	}
	if got := metric(t, r.d.Registry(), "vigil_config_last_reload_successful"); got != 0 {
		t.Errorf("vigil_config_last_reload_successful = %v after a failed reload", got)
	}

	// The same reload with a live context applies all of it.
	if err := r.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	apiClient{t: t, base: base, token: newToken}.do("GET", "/api/v1/status", "", http.StatusOK)
	apiClient{t: t, base: base, token: oldToken}.do("GET", "/api/v1/status", "", http.StatusUnauthorized)
	if r.d.detector.state.Load().cfg.Lateness != next.Detect.Lateness {
		t.Error("the new detection settings are not in force after a good reload")
	}
}

// TestReloadErrorsNameTheKeyOnce: a reload refused for a file of the admin
// or privacy section says so starting with the key, named once (not
// "admin: admin.tokens[0]"), and says how to fix it.
func TestReloadErrorsNameTheKeyOnce(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	cert, key := testfiles.TLS(t, t.TempDir(), "admin")
	cases := []struct {
		name   string
		set    func(*config.Config)
		prefix string
		fix    string
	}{
		{"token sha256_file missing", func(c *config.Config) {
			c.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256File: missing, Scopes: []admin.Scope{admin.ScopeRead}}}
		}, "admin.tokens[0] (oncall): sha256_file: open " + missing, "point it at a file Vigil's user can read holding the token's SHA-256"},
		{"client CA missing", func(c *config.Config) {
			c.Admin.TLS.ClientCAFile = missing
		}, "admin.tls.client_ca_file: open " + missing, "point it at a PEM file"},
		{"privacy key missing", func(c *config.Config) {
			c.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldUser}, KeyFile: missing}
		}, "privacy.key_file cannot be read: open " + missing, "head -c 32 /dev/urandom"},
	}
	cfg := testConfig(t)
	cfg.Admin.TLS.CertFile, cfg.Admin.TLS.KeyFile = cert, key // TLS cannot be turned on by reload
	next := cfg
	r := startDaemonWith(t, cfg, Options{Load: func() (config.Config, []byte, error) { return next, nil, next.Validate() }})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next = cfg
			tc.set(&next)
			err := r.d.Reload(t.Context())
			if err == nil || !strings.HasPrefix(err.Error(), tc.prefix) || !strings.Contains(err.Error(), tc.fix) {
				t.Fatalf("Reload() = %v; want an error starting %q and saying %q", err, tc.prefix, tc.fix)
			}
		})
	}
}

// TestReloadWithTheSameConfigReenablesAGoneReceiver: a receiver disabled by
// a 410 is enabled again by a reload that changes nothing, as the log and
// docs say, and the alert queued while it was disabled is delivered.
func TestReloadWithTheSameConfigReenablesAGoneReceiver(t *testing.T) {
	var calls atomic.Int32
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusGone) // the endpoint was being moved; it is back now
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer gone.Close()
	cfg := testConfig(t)
	cfg.Notify.Receivers = []notify.ReceiverConfig{{Name: "hook", Webhook: &webhook.Config{URL: gone.URL}}}
	cfg.Notify.Routes = []notify.RouteConfig{{Receivers: []string{"hook"}}}
	r := startDaemonWith(t, cfg, Options{Load: func() (config.Config, []byte, error) { return cfg, nil, nil }})
	alert := func(fp string) detect.Alert {
		return detect.Alert{Rule: "brute_force_user", Severity: "high", Category: "brute_force", Transition: detect.TransitionFiring,
			State: detect.StateFiring, Fingerprint: fp, StartsAt: time.Now()}
	}
	if err := r.d.notifier.Notify(t.Context(), alert("first")); err != nil {
		t.Fatal(err)
	}
	reg := r.d.Registry()
	testkit.WaitFor(t, 10*time.Second, "the receiver disabled", func() error {
		return equalf(metric(t, reg, "vigil_notify_receiver_disabled", "receiver", "hook"), 1, "disabled")
	})
	if err := r.d.notifier.Notify(t.Context(), alert("second")); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the queued alert delivered after the reload", func() error {
		if n := calls.Load(); n != 2 {
			return fmt.Errorf("%d calls", n)
		}
		return nil
	})
	if got := metric(t, reg, "vigil_notify_receiver_disabled", "receiver", "hook"); got != 0 {
		t.Errorf("disabled = %v after the reload, want 0", got)
	}
}

// TestSilenceGuardFollowsTheLoadedRules posts through the admin API a
// silence that would mute every alert of the loaded rules (refused), then
// reloads a rule set with one more rule, which the silence spares: the same
// silence is accepted. The guard judges against the rules in force.
func TestSilenceGuardFollowsTheLoadedRules(t *testing.T) {
	const twoRules = `rules:
  - {name: login_failures, severity: high, category: brute_force, match: status == 401, group_by: [user], threshold: {count: 5, window: 1m}}
  - {name: server_errors, severity: high, category: availability, match: status >= 500, group_by: [service], threshold: {count: 50, window: 1m}}
`
	const third = `  - {name: admin_errors, severity: low, category: availability, match: status == 403, group_by: [service], threshold: {count: 50, window: 1m}}
`
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	writeFile(t, rulesFile, twoRules)
	cfg := testConfig(t)
	cfg.Detect.Rules = dir
	tok, hash := admin.NewToken()
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeWrite}}}
	r := startDaemonWith(t, cfg, Options{Load: func() (config.Config, []byte, error) { return cfg, nil, cfg.Validate() }})
	api := apiClient{t: t, base: "http://" + r.d.Addr().String(), token: tok}
	silence := fmt.Sprintf(`{"matchers": [{"name": "rule", "op": "!=", "value": "admin_errors"}], "ends_at": %q, "comment": "maintenance"}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339))

	body := api.do("POST", "/api/v1/silences", silence, http.StatusBadRequest)
	if want := `would mute every alert the loaded rules can raise: its matcher rule != \"admin_errors\" accepts all alerts of rules login_failures, server_errors`; !strings.Contains(body, want) {
		t.Errorf("refusal %s\ndoes not say %s", body, want)
	}
	writeFile(t, rulesFile, twoRules+third)
	api.do("POST", "/api/v1/reload", "", http.StatusOK)
	api.do("POST", "/api/v1/silences", silence, http.StatusCreated)
}

// TestFailedReloadLeavesNotifyAsItWas reproduces a reload half applied to
// notification: a receiver disabled by a 410 and another whose circuit is
// open, then a reload that fails on a missing admin sha256_file. The
// running notifier, its gauges and its JetStream streams and consumers must
// stay as they were; with the file in place, the same reload applies all.
func TestFailedReloadLeavesNotifyAsItWas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*notify.Config) // what the reload changes in notify besides
	}{
		{"notify unchanged", func(*notify.Config) {}},
		{"notify settings and receivers changed", func(c *notify.Config) {
			c.Notify.QueueMaxAge += time.Hour
			c.Notify.AckWait += time.Second
			c.Receivers = append(slices.Clone(c.Receivers), notify.ReceiverConfig{Name: "added", Log: &jsonlog.Config{}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }))
			defer gone.Close()
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
			defer failing.Close()
			cfg := testConfig(t)
			cfg.Notify.Receivers = []notify.ReceiverConfig{
				{Name: "gone", Webhook: &webhook.Config{URL: gone.URL}},
				{Name: "failing", Webhook: &webhook.Config{URL: failing.URL}},
			}
			cfg.Notify.Routes = []notify.RouteConfig{{Receivers: []string{"gone", "failing"}}}
			cfg.Notify.Notify.BreakerFailures = 1
			cfg.Notify.Notify.InitialBackoff, cfg.Notify.Notify.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
			tokenFile := filepath.Join(t.TempDir(), "oncall.sha256")
			_, hash := admin.NewToken()
			next := cfg
			next.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256File: tokenFile, Scopes: []admin.Scope{admin.ScopeRead}}}
			tc.change(&next.Notify)
			r := startDaemonWith(t, cfg, Options{Load: func() (config.Config, []byte, error) { return next, []byte("next"), next.Validate() }})
			reg := r.d.Registry()
			err := r.d.notifier.Notify(t.Context(), detect.Alert{Rule: "brute_force_user", Severity: "high", Category: "brute_force",
				Transition: detect.TransitionFiring, State: detect.StateFiring, Fingerprint: "f1", StartsAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 10*time.Second, "one receiver disabled, the other's circuit open", func() error {
				return errors.Join(
					equalf(metric(t, reg, "vigil_notify_receiver_disabled", "receiver", "gone"), 1, "gone disabled"),
					equalf(metric(t, reg, "vigil_notify_circuit_open", "receiver", "failing"), 1, "failing circuit open"))
			})
			running := r.d.notifier.n()
			before := notifyResources(t, r)

			if err := r.d.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "sha256_file") {
				t.Fatalf("Reload() = %v, want the missing sha256_file", err)
			}
			if got := metric(t, reg, "vigil_notify_receiver_disabled", "receiver", "gone"); got != 1 {
				t.Errorf("vigil_notify_receiver_disabled{gone} = %v after the failed reload, want 1 as before", got)
			}
			if got := metric(t, reg, "vigil_notify_circuit_open", "receiver", "failing"); got != 1 {
				t.Errorf("vigil_notify_circuit_open{failing} = %v after the failed reload, want 1 as before", got)
			}
			if r.d.notifier.n() != running || !slices.Equal(running.DisabledReceivers(), []string{"gone"}) {
				t.Errorf("after the failed reload the running notifier changed or lists %q disabled, want the same one with [gone]", running.DisabledReceivers())
			}
			if after := notifyResources(t, r); after != before {
				t.Errorf("JetStream resources changed by the failed reload:\nbefore %s\nafter  %s", before, after)
			}

			writeFile(t, tokenFile, hash+"\n")
			if err := r.d.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := metric(t, reg, "vigil_notify_receiver_disabled", "receiver", "gone"); got != 0 {
				t.Errorf("vigil_notify_receiver_disabled{gone} = %v after a good reload, want 0", got)
			}
			if r.d.notifier.n() == running {
				t.Error("a good reload kept the notifier with a disabled receiver")
			}
			want := fmt.Sprintf("outbox max age %s, ack wait %s", next.Notify.Notify.QueueMaxAge, next.Notify.Notify.AckWait)
			if after := notifyResources(t, r); !strings.HasPrefix(after, want) {
				t.Errorf("after a good reload: %s, want %s", after, want)
			}
		})
	}
}

// notifyResources describes the notify stream and consumer settings a
// reload may change, and the consumers there are.
func notifyResources(t *testing.T, r *running) string {
	t.Helper()
	stream, err := r.d.js.Stream(t.Context(), notify.OutboxStream)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range stream.ConsumerNames(t.Context()).Name() {
		names = append(names, name)
	}
	slices.Sort(names)
	cons, err := stream.Consumer(t.Context(), "vigil-notify-gone")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("outbox max age %s, ack wait %s, consumers %q", stream.CachedInfo().Config.MaxAge, cons.CachedInfo().Config.AckWait, names)
}

// Members compare notification settings by digest: the same receivers
// with their secrets read from files at different paths (one host mounts
// them elsewhere) are the same settings; another receiver URL is not.
// (Secret values are never part of the digest: they show as <secret>.)
func TestNotifyDigestIgnoresSecretFilePaths(t *testing.T) {
	dir := t.TempDir()
	write := func(name, value string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, value)
		return p
	}
	hook := func(secretFile string) notify.Config {
		return notify.Config{
			Receivers: []notify.ReceiverConfig{{Name: "hook", Webhook: &webhook.Config{URL: "https://hooks.example/v1", SecretFile: secretFile}}},
			Routes:    []notify.RouteConfig{{Receivers: []string{"hook"}}},
			Notify:    notify.DefaultSettings(),
		}
	}
	a, b := hook(write("a", "s3cret")), hook(write("b", "s3cret"))
	if notifyDigest(a) != notifyDigest(b) {
		t.Errorf("the same settings with the secret at another path differ: %s, %s", notifyDigest(a), notifyDigest(b))
	}
	c := hook(write("c", "s3cret"))
	c.Receivers[0].Webhook.URL = "https://hooks.example/v2"
	if notifyDigest(a) == notifyDigest(c) {
		t.Error("a receiver with another URL has the same digest")
	}
}
