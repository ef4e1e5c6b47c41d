package ingest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/config"
)

// TestDeadLetterKeySpellings reads the dead-letter retention keys in their
// current spelling (the one notify's dead_letter_max_age uses) and in the
// old one, which existing configs keep working with and a warning names;
// both at once, or an unknown key, is refused with its line.
func TestDeadLetterKeySpellings(t *testing.T) {
	cases := []struct {
		name      string
		yaml      string
		wantAge   time.Duration
		wantBytes int64
		warnings  []string
		err       string
	}{
		{name: "current spelling", yaml: "ingest:\n  dead_letter_max_age: 48h\n  dead_letter_max_bytes: 1000\n",
			wantAge: 48 * time.Hour, wantBytes: 1000},
		{name: "old spelling", yaml: "ingest:\n  deadletter_max_age: 48h\n  deadletter_max_bytes: 1000\n",
			wantAge: 48 * time.Hour, wantBytes: 1000,
			warnings: []string{"line 2: ingest.deadletter_max_age is deprecated; rename it to ingest.dead_letter_max_age",
				"line 3: ingest.deadletter_max_bytes is deprecated; rename it to ingest.dead_letter_max_bytes"}},
		{name: "defaults", yaml: "ingest:\n  max_services: 5\n", wantAge: 720 * time.Hour, wantBytes: 1 << 30},
		{name: "both spellings", yaml: "ingest:\n  deadletter_max_age: 48h\n  dead_letter_max_age: 24h\n",
			err: "vigil.yaml: line 3: ingest.dead_letter_max_age is set twice"},
		{name: "unknown key", yaml: "ingest:\n  max_services: 5\n  dead_leter_max_age: 1h\n",
			err: "vigil.yaml: line 3: field dead_leter_max_age not found"},
		{name: "wrong type", yaml: "ingest:\n  dead_letter_max_bytes: lots\n", err: "line 2: cannot read !!str `lots`"},
		{name: "invalid value", yaml: "ingest:\n  deadletter_max_age: 1s\n", err: "ingest.dead_letter_max_age must be at least 1m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("vigil.yaml", []byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Ingest.DeadLetterMaxAge != tc.wantAge || cfg.Ingest.DeadLetterMaxBytes != tc.wantBytes {
				t.Errorf("dead letters kept %v and %d bytes, want %v and %d", cfg.Ingest.DeadLetterMaxAge, cfg.Ingest.DeadLetterMaxBytes, tc.wantAge, tc.wantBytes)
			}
			if got := cfg.Ingest.Deprecations(); strings.Join(got, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("Deprecations = %q, want %q", got, tc.warnings)
			}
		})
	}
}
