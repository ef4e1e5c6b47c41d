package admin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/privacy"
)

// TestPeerAddressPseudonymisedInLogs: with source_ip pseudonymisation on,
// log and audit lines carry the pseudonym, while the auth failure event
// keeps the real address for detection (the pipeline pseudonymises its
// output).
func TestPeerAddressPseudonymisedInLogs(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := privacy.New(privacy.Config{Pseudonymize: []privacy.Field{privacy.FieldSourceIP}, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil, func(o *Options) { o.Privacy = p })
	want := p.Pseudonym(privacy.FieldSourceIP, "127.0.0.1")

	f.do(t, "none", "GET", "/api/v1/status", nil)
	f.do(t, "write", "POST", "/api/v1/reload", nil)
	tests := []struct {
		name string
		msg  string
	}{
		{"auth failure line", "admin auth failed"},
		{"audit line", "audit"},
		{"request line", "admin request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := f.logs.lines(t, tt.msg)
			if len(lines) == 0 {
				t.Fatal("no line")
			}
			for _, l := range lines {
				if l["remote_ip"] != want {
					t.Fatalf("remote_ip = %v, want pseudonym %s", l["remote_ip"], want)
				}
			}
		})
	}
	t.Run("event keeps the real address", func(t *testing.T) {
		evs := f.authEvents()
		if len(evs) != 1 || evs[0].SourceIP.String() != "127.0.0.1" {
			t.Fatalf("events %+v", evs)
		}
	})
}
