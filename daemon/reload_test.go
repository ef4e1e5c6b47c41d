package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/config"
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
		{"restart-only change is refused by name", "ingest:\n  max_services: 5\n", "reload cannot change ingest", firstHash},
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
