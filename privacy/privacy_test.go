package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/event"
)

const testKey = "0123456789abcdef0123456789abcdef-test-key"

func writeKey(t *testing.T, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newP(t *testing.T, key string, fields ...Field) *Pseudonymizer {
	t.Helper()
	p, err := New(Config{Pseudonymize: fields, KeyFile: writeKey(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"disabled", Config{}, ""},
		{"both fields", Config{Pseudonymize: []Field{"source_ip", "user"}, KeyFile: "/k"}, ""},
		{"unknown field", Config{Pseudonymize: []Field{"email"}, KeyFile: "/k"}, `unknown field "email"`},
		{"duplicate", Config{Pseudonymize: []Field{"user", "user"}, KeyFile: "/k"}, "listed twice"},
		{"missing key file", Config{Pseudonymize: []Field{"user"}}, "privacy.key_file: required"},
		{"key file without fields", Config{KeyFile: "/k"}, "pseudonymize is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		missing bool
		wantErr string
	}{
		{"good key", testKey, false, ""},
		{"good key with newline", testKey + "\n", false, ""},
		{"short key", "too-short\n", false, "at least 32 are needed"},
		{"missing file", "", true, "privacy.key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent")
			if !tt.missing {
				path = writeKey(t, tt.key)
			}
			_, err := New(Config{Pseudonymize: []Field{FieldUser}, KeyFile: path})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "too-short") {
				t.Fatalf("error reveals the key: %v", err)
			}
		})
	}
}

func TestPseudonym(t *testing.T) {
	p := newP(t, testKey, FieldSourceIP, FieldUser)
	other := newP(t, testKey+"-rotated", FieldSourceIP, FieldUser)
	ipOnly := newP(t, testKey, FieldSourceIP)

	// An independent computation of the documented form.
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte("user\x00alice"))
	wantAlice := "u_" + hex.EncodeToString(m.Sum(nil)[:12])

	tests := []struct {
		name  string
		got   string
		check func(string) bool
	}{
		{"user form", p.Pseudonym(FieldUser, "alice"), func(s string) bool { return s == wantAlice }},
		{"ip is documentation prefix", p.Pseudonym(FieldSourceIP, "203.0.113.7"), func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err == nil && netip.MustParsePrefix("2001:db8::/32").Contains(a)
		}},
		{"mapped ipv4 same as ipv4", p.Pseudonym(FieldSourceIP, "::ffff:203.0.113.7"), func(s string) bool {
			return s == p.Pseudonym(FieldSourceIP, "203.0.113.7")
		}},
		{"stable", p.Pseudonym(FieldUser, "alice"), func(s string) bool { return s == p.Pseudonym(FieldUser, "alice") }},
		{"distinct inputs differ", p.Pseudonym(FieldUser, "bob"), func(s string) bool { return s != wantAlice }},
		{"new key, new pseudonym", other.Pseudonym(FieldUser, "alice"), func(s string) bool { return s != wantAlice }},
		{"domains separated", p.Pseudonym(FieldSourceIP, "alice"), func(s string) bool { return !strings.Contains(s, "alice") && s != wantAlice }},
		{"disabled field unchanged", ipOnly.Pseudonym(FieldUser, "alice"), func(s string) bool { return s == "alice" }},
		{"empty unchanged", p.Pseudonym(FieldUser, ""), func(s string) bool { return s == "" }},
		{"nil pseudonymizer unchanged", (*Pseudonymizer)(nil).Pseudonym(FieldUser, "alice"), func(s string) bool { return s == "alice" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.check(tt.got) {
				t.Fatalf("got %q", tt.got)
			}
		})
	}
}

func TestUseAndEqual(t *testing.T) {
	p := newP(t, testKey, FieldUser)
	before := p.Pseudonym(FieldUser, "alice")
	same := newP(t, testKey, FieldUser)
	if !p.Equal(same) {
		t.Fatal("two Pseudonymizers of one key and fields are not Equal")
	}
	rotated := newP(t, testKey+"-2", FieldUser)
	wider := newP(t, testKey, FieldUser, FieldSourceIP)
	off, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]*Pseudonymizer{"another key": rotated, "more fields": wider, "disabled": off, "nil": nil} {
		if p.Equal(q) || q.Equal(p) {
			t.Errorf("Equal to the Pseudonymizer with %s", name)
		}
	}
	if !off.Equal(nil) {
		t.Error("a disabled Pseudonymizer differs from nil, though neither changes anything")
	}
	p.Use(rotated)
	if got := p.Pseudonym(FieldUser, "alice"); got == before || got != rotated.Pseudonym(FieldUser, "alice") || p.KeyID() != rotated.KeyID() {
		t.Fatalf("after Use, Pseudonym = %q (before %q)", got, before)
	}
	p.Use(off)
	if got := p.Pseudonym(FieldUser, "alice"); got != "alice" {
		t.Fatalf("after Use of a disabled one, Pseudonym = %q", got)
	}
}

func TestEvent(t *testing.T) {
	p := newP(t, testKey, FieldSourceIP, FieldUser)
	in := event.Event{
		Time: time.Unix(1700000000, 0), Service: "auth", RequestID: "r1", Method: "POST",
		Endpoint: "/v1/login", Status: 401, SourceIP: netip.MustParseAddr("198.51.100.4"), User: "alice",
	}
	out := p.Event(in)
	if in.User != "alice" || in.SourceIP.String() != "198.51.100.4" {
		t.Fatal("Event modified its input")
	}
	if out.User != p.Pseudonym(FieldUser, "alice") {
		t.Errorf("User = %q", out.User)
	}
	if out.SourceIP.String() != p.Pseudonym(FieldSourceIP, "198.51.100.4") {
		t.Errorf("SourceIP = %v, want the same pseudonym as the label form", out.SourceIP)
	}
	if out.RequestID != "r1" || out.Endpoint != "/v1/login" || out.Status != 401 {
		t.Errorf("other fields changed: %+v", out)
	}
	b := string(out.AppendJSON(nil))
	if strings.Contains(b, "alice") || strings.Contains(b, "198.51.100.4") {
		t.Errorf("encoded event still carries personal data: %s", b)
	}
}
