package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/privacy"
)

// TestFailedAdminLoginsRaiseAnAlert checks that a burst of requests with
// wrong tokens flows through Vigil's own pipeline into a default-rule alert
// that reaches the log receiver.
func TestFailedAdminLoginsRaiseAnAlert(t *testing.T) {
	cfg := testConfig(t)
	_, hash := admin.NewToken()
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeAdmin}}}
	var out testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out})
	api := apiClient{t: t, base: "http://" + r.d.Addr().String(), token: "vigil_guess"}
	for range 12 {
		api.do(http.MethodGet, "/api/v1/alerts", "", http.StatusUnauthorized)
	}
	testkit.WaitFor(t, 15*time.Second, "admin brute-force alert delivered", func() error {
		if !strings.Contains(out.String(), `"rule":"admin_api_brute_force"`) {
			return fmt.Errorf("no admin_api_brute_force alert on stdout yet")
		}
		return nil
	})
	if got := metric(t, r.d.Gatherer(), "vigil_admin_auth_failures_total", "reason", "unknown"); got != 12 {
		t.Errorf("vigil_admin_auth_failures_total{reason=unknown} = %v, want 12", got)
	}
	if strings.Contains(out.String(), "vigil_guess") {
		t.Errorf("the presented token appears in the alert output")
	}
}

// TestPseudonymisedAlerts checks that with privacy.pseudonymize set, the
// alert that reaches a receiver carries a stable pseudonym, not the address.
func TestPseudonymisedAlerts(t *testing.T) {
	cfg := testConfig(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	writeFile(t, keyFile, "0123456789abcdef0123456789abcdef-test-key")
	cfg.Privacy = privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldSourceIP, privacy.FieldUser}, KeyFile: keyFile}
	var out testkit.SyncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out})
	attack := publishAttack(t, r.d.NATSURL(), 60)
	testkit.WaitFor(t, 15*time.Second, "brute-force alert delivered", func() error {
		if !strings.Contains(out.String(), `"rule":"brute_force_source_ip"`) {
			return fmt.Errorf("no brute_force_source_ip alert yet")
		}
		return nil
	})
	for _, personal := range attack.personal {
		if strings.Contains(out.String(), personal) {
			t.Errorf("delivered alerts contain %q despite pseudonymisation:\n%s", personal, out.String())
		}
	}
	p, err := privacy.New(cfg.Privacy)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Addr(attack.addr).String(); !strings.Contains(out.String(), want) {
		t.Errorf("delivered alerts lack the pseudonym %s of the attacking address", want)
	}
}
