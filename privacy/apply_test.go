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
	if got := onlyUser.Label("source_prefix", "203.0.113.0/24"); got != "203.0.113.0/24" {
		t.Fatalf("source_prefix rewritten though source_ip is not pseudonymised: %q", got)
	}
	net1, net2 := p.Label("source_prefix", "203.0.113.0/24"), p.Label("source_prefix", "203.0.114.0/24")
	if !strings.HasPrefix(net1, "2001:db8:") || !strings.HasSuffix(net1, "/96") || net1 == net2 || strings.Contains(net1, "203.0.113") {
		t.Fatalf("network pseudonyms %q, %q: want distinct /96 networks of 2001:db8::/32", net1, net2)
	}
	if net1 != p.Label("source_prefix", "203.0.113.0/24") {
		t.Fatal("network pseudonym not stable")
	}
	var none *Pseudonymizer
	if got := none.Label("user", "alice"); got != "alice" {
		t.Fatalf("nil Pseudonymizer rewrote: %q", got)
	}
}
