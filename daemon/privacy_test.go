package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/privacy"
)

// TestPseudonymsSurviveRestart restarts the daemon with privacy on during
// an attack. After the restart, the alerts rebuilt from the stream leave
// detection by the start-up announcement, reconciliation and the API
// rather than by the live path: none may carry the raw address or user,
// and the pseudonymised alerts still firing must be neither announced
// again nor resolved.
func TestPseudonymsSurviveRestart(t *testing.T) {
	cfg := testConfig(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	writeFile(t, keyFile, "0123456789abcdef0123456789abcdef-test-key")
	cfg.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldSourceIP, privacy.FieldUser}, KeyFile: keyFile}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	var first testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &first})
	attack := publishAttack(t, r.d.NATSURL(), 60)
	testkit.WaitUntil(t, 15*time.Second, "the brute-force alert", func() bool {
		return strings.Contains(first.String(), `"rule":"brute_force_source_ip"`)
	})
	r.stop()

	var second testkit.SyncBuffer
	clk := clock.NewFake(time.Now())
	r = startDaemonWith(t, cfg, Options{Logger: discard, Stdout: &second, Clock: clk})
	waitSettled(t, r, clk)
	_, js := connectJS(t, r.d.NATSURL())
	testkit.WaitFor(t, 15*time.Second, "the notification outbox to drain", testkit.StreamEmpty(js, notify.OutboxStream))

	alerts, err := backend{r.d}.Alerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	api, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(api), `"rule":"brute_force_source_ip"`) {
		t.Fatalf("the attack's alert does not fire after the restart: %s", api)
	}
	for where, text := range map[string]string{"notifications after the restart": second.String(), "the API's alerts": string(api)} {
		for _, raw := range attack.personal {
			if strings.Contains(text, raw) {
				t.Errorf("%s name %q despite pseudonymisation:\n%s", where, raw, text)
			}
		}
	}
	if strings.Contains(second.String(), "brute_force_source_ip") {
		t.Errorf("the alert still firing was announced again or resolved after the restart:\n%s", second.String())
	}
	p, err := privacy.New(cfg.Privacy)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Addr(attack.addr).String(); !strings.Contains(string(api), want) {
		t.Errorf("the API's alerts lack the pseudonym %s of the attacking address: %s", want, api)
	}
}

// TestPrivacyReloadRekeysAlerts changes the pseudonymisation key by
// reload while an alert fires: the engine is rebuilt, so the alert fires
// under its new pseudonym and the one under the old pseudonym resolves;
// no raw address or user is sent either way.
func TestPrivacyReloadRekeysAlerts(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	writeFile(t, keyFile, "0123456789abcdef0123456789abcdef-test-key")
	cfg := testConfig(t)
	cfg.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldSourceIP, privacy.FieldUser}, KeyFile: keyFile}
	load := func() (config.Config, []byte, error) { return cfg, []byte(fmt.Sprint(cfg.Privacy)), cfg.Validate() }

	var out testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out, Load: load})
	attack := publishAttack(t, r.d.NATSURL(), 60)
	oldKey, err := privacy.New(cfg.Privacy)
	if err != nil {
		t.Fatal(err)
	}
	oldIP := oldKey.Addr(attack.addr).String()
	testkit.WaitUntil(t, 15*time.Second, "the brute-force alert", func() bool {
		return strings.Contains(out.String(), oldIP)
	})

	newKeyFile := filepath.Join(dir, "key2")
	writeFile(t, newKeyFile, "fedcba9876543210fedcba9876543210-new-key")
	cfg.Privacy.KeyFile = newKeyFile
	if err := r.d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	newKey, err := privacy.New(cfg.Privacy)
	if err != nil {
		t.Fatal(err)
	}
	newIP := newKey.Addr(attack.addr).String()
	testkit.WaitFor(t, 15*time.Second, "the alert re-keyed", func() error {
		text := out.String()
		if !strings.Contains(text, `"transition":"firing"`) || !strings.Contains(text, newIP) {
			return fmt.Errorf("no alert under the new pseudonym %s yet", newIP)
		}
		if !resolvedWith(text, oldIP) {
			return fmt.Errorf("the alert under the old pseudonym %s is not resolved yet", oldIP)
		}
		return nil
	})
	for _, raw := range attack.personal {
		if strings.Contains(out.String(), raw) {
			t.Errorf("notifications name %q", raw)
		}
	}
}

// resolvedWith reports whether a JSON line of out resolves an alert whose
// labels hold value.
func resolvedWith(out, value string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"transition":"resolved"`) && strings.Contains(line, value) {
			return true
		}
	}
	return false
}
