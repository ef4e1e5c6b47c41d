package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/admin"
)

// TestFailedAdminLoginsRaiseAnAlert checks that a burst of requests with
// wrong tokens flows through Vigil's own pipeline into a default-rule alert
// that reaches the log receiver.
func TestFailedAdminLoginsRaiseAnAlert(t *testing.T) {
	cfg := testConfig(t)
	_, hash := admin.NewToken()
	cfg.Admin.Tokens = []admin.TokenConfig{{Name: "oncall", SHA256: hash, Scopes: []admin.Scope{admin.ScopeAdmin}}}
	var out syncBuffer
	r := startDaemonWith(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: &out})
	api := apiClient{t: t, base: "http://" + r.d.Addr().String(), token: "vigil_guess"}
	for range 12 {
		api.do(http.MethodGet, "/api/v1/alerts", "", http.StatusUnauthorized)
	}
	waitFor(t, 15*time.Second, "admin brute-force alert delivered", func() error {
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
