package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitFile = "systemd/vigil.service"

// testableUnit writes a copy of the unit whose ExecStart points at an
// executable that exists here (this test binary), as systemd-analyze checks.
func testableUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/vigil", self)
	path := filepath.Join(t.TempDir(), "vigil.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemdUnitVerifies runs systemd-analyze verify, which reports unknown
// keys and bad values as warnings on an exit code of 0: any output fails.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	tool := needTool(t, "systemd-analyze")
	out, err := run(t, time.Minute, ".", nil, tool, "verify", testableUnit(t))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: err %v\n%s", err, out)
	}
}

// TestSystemdUnitExposure requires systemd's own security assessment to rate
// the sandbox at 2.0 or better on its 0 (locked down) to 10 (open) scale.
func TestSystemdUnitExposure(t *testing.T) {
	t.Parallel()
	tool := needTool(t, "systemd-analyze")
	out, err := run(t, time.Minute, ".", nil, tool, "security", "--offline=true", "--threshold=20", testableUnit(t))
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 or error: %v\n%s", err, out)
	}
}

// TestSystemdUnitHardening pins the directives the issue requires, so a later
// edit cannot quietly drop one.
func TestSystemdUnitHardening(t *testing.T) {
	directives := readUnit(t, unitFile)
	tests := []struct {
		key, want string
	}{
		{"User", "vigil"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"ReadWritePaths", "/var/lib/vigil"},
		{"Restart", "on-failure"},
		{"EnvironmentFile", "/etc/vigil/vigil.env"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := directives[tt.key]
			if !ok || len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s = %q (present %v), want exactly %q", tt.key, got, ok, tt.want)
			}
		})
	}
	if exec := directives["ExecStart"]; len(exec) != 1 || !strings.Contains(exec[0], "--data-dir /var/lib/vigil") {
		t.Errorf("ExecStart %q does not use the only writable path /var/lib/vigil as data dir", exec)
	}
}

// TestSystemdEnvFileHoldsNoSecrets keeps real values out of the example env file.
func TestSystemdEnvFileHoldsNoSecrets(t *testing.T) {
	b, err := os.ReadFile("systemd/vigil.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines(string(b)) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if _, value, ok := strings.Cut(l, "="); !ok || value != "" {
			t.Errorf("vigil.env line %q: want NAME= with an empty value", l)
		}
	}
}

// readUnit returns every Key=Value of a unit file; keys may repeat.
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
