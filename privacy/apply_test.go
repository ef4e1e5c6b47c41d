package privacy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/detect"
)

func TestAlert(t *testing.T) {
	p := newP(t, testKey, FieldSourceIP, FieldUser)
	ip := p.Pseudonym(FieldSourceIP, "10.0.0.1")
	alice := p.Pseudonym(FieldUser, "alice")
	in := detect.Alert{
		Rule:        "brute_force_ip_user",
		Labels:      map[string]string{"source_ip": "10.0.0.1", "user": "alice", "service": "auth"},
		Fingerprint: "9f86d081884c7d65",
		Summary:     "42 failed logins from 10.0.0.1 for alice.",
		Description: "10.0.0.10 is another host; alice@example.com and alice_b are other strings; ip=10.0.0.1, user:alice",
		Sample:      []string{"req-1", "req-alice"},
	}
	out := p.Alert(in)

	tests := []struct {
		name, got, want string
	}{
		{"ip label", out.Labels["source_ip"], ip},
		{"user label", out.Labels["user"], alice},
		{"other label", out.Labels["service"], "auth"},
		{"summary", out.Summary, "42 failed logins from " + ip + " for " + alice + "."},
		{"description", out.Description, "10.0.0.10 is another host; " + alice + "@example.com and alice_b are other strings; ip=" + ip + ", user:" + alice},
		{"sample word", out.Sample[1], "req-" + alice},
		{"sample untouched", out.Sample[0], "req-1"},
		{"input labels untouched", in.Labels["user"], "alice"},
		{"input sample untouched", in.Sample[1], "req-alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	t.Run("fingerprint keyed, same form, stable", func(t *testing.T) {
		if out.Fingerprint == in.Fingerprint || len(out.Fingerprint) != len(in.Fingerprint) || !isHex(out.Fingerprint) {
			t.Fatalf("fingerprint %q -> %q", in.Fingerprint, out.Fingerprint)
		}
		if again := p.Alert(in); again.Fingerprint != out.Fingerprint {
			t.Fatal("fingerprint not stable")
		}
	})
	t.Run("no personal data left in JSON", func(t *testing.T) {
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "10.0.0.10", "")
		s = strings.ReplaceAll(s, "alice_b", "")
		if strings.Contains(s, "10.0.0.1") || strings.Contains(s, `"alice`) || strings.Contains(s, " alice") {
			t.Fatalf("alert JSON still names the source or user: %s", b)
		}
	})
}

func TestAlertUnchanged(t *testing.T) {
	in := detect.Alert{
		Labels:      map[string]string{"service": "auth"},
		Fingerprint: "abc",
		Summary:     "error spike on auth",
	}
	tests := []struct {
		name string
		p    *Pseudonymizer
	}{
		{"nil", nil},
		{"disabled", func() *Pseudonymizer { p, _ := New(Config{}); return p }()},
		{"no personal labels", newP(t, testKey, FieldSourceIP, FieldUser)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.p.Alert(in)
			if out.Fingerprint != "abc" || out.Summary != in.Summary || out.Labels["service"] != "auth" {
				t.Fatalf("alert changed: %+v", out)
			}
		})
	}
}

func TestReplaceWords(t *testing.T) {
	users := []replacement{{old: "bobby", new: "Y"}, {old: "bob", new: "X"}}
	ips := []replacement{{old: "fe80::1", new: "A", ip: true}, {old: "10.0.0.1", new: "B", ip: true}}
	tests := []struct {
		name, in, want string
		repl           []replacement
	}{
		{"whole words", "bob and bobby", "X and Y", users},
		{"embedded not replaced", "bobcat abob", "bobcat abob", users},
		{"punctuation end", "(bob).", "(X).", users},
		{"dot continues a user", "bob.smith", "bob.smith", users},
		{"colon separates a user", "user:bob", "user:X", users},
		{"empty", "", "", users},
		{"longer address", "10.0.0.10 10.0.0.1.5", "10.0.0.10 10.0.0.1.5", ips},
		{"address at sentence end", "from 10.0.0.1.", "from B.", ips},
		{"colon continues an address", "2001:fe80::1 fe80::1", "2001:fe80::1 A", ips},
		{"address after equals", "ip=10.0.0.1,", "ip=B,", ips},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceWords(tt.in, tt.repl); got != tt.want {
				t.Fatalf("replaceWords(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
