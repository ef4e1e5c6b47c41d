package privacy

import (
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	p := newP(t, testKey, FieldSourceIP, FieldUser)
	tests := []struct {
		name, label, value, want string
	}{
		{"address", "source_ip", "10.0.0.1", p.Pseudonym(FieldSourceIP, "10.0.0.1")},
		{"user", "user", "alice", p.Pseudonym(FieldUser, "alice")},
		{"other label", "service", "alice", "alice"},
		{"empty user", "user", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Label(tt.label, tt.value); got != tt.want {
				t.Fatalf("Label(%q, %q) = %q, want %q", tt.label, tt.value, got, tt.want)
			}
		})
	}
	if got := p.Label("user", "alice"); !strings.HasPrefix(got, userPrefix) {
		t.Fatalf("user pseudonym %q lacks %q", got, userPrefix)
	}
	onlyUser := newP(t, testKey, FieldUser)
	if got := onlyUser.Label("source_ip", "10.0.0.1"); got != "10.0.0.1" {
		t.Fatalf("source_ip rewritten though only user is pseudonymised: %q", got)
	}
	var none *Pseudonymizer
	if got := none.Label("user", "alice"); got != "alice" {
		t.Fatalf("nil Pseudonymizer rewrote: %q", got)
	}
}
