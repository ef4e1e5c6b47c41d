// Package privacy owns Vigil's keyed pseudonymisation of personal data: source
// IP addresses and user names in alerts, notifications and logs are replaced
// by HMAC-SHA256 pseudonyms under a key read from a file, so teams can alert
// on attacks without spreading who was involved. The same input maps to the
// same pseudonym until the key changes; without the key a pseudonym cannot be
// reversed or recomputed, not even by trying every IPv4 address.
package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// Field names a kind of personal data that can be pseudonymised. Its value
// is the event field and alert label name.
type Field string

// The fields Vigil can pseudonymise.
const (
	FieldSourceIP Field = "source_ip"
	FieldUser     Field = "user"
)

// Fields lists every field Vigil can pseudonymise, in documentation order.
func Fields() []Field { return []Field{FieldSourceIP, FieldUser} }

// MinKeyBytes is the shortest key accepted: 32 bytes, the HMAC-SHA256 block
// strength. `head -c 32 /dev/urandom | base64 > key` makes a good one.
const MinKeyBytes = 32

// Config is the `privacy:` section of Vigil's configuration.
type Config struct {
	// Pseudonymize lists the fields to replace: source_ip, user.
	Pseudonymize []Field `yaml:"pseudonymize"`
	// KeyFile holds the HMAC key (at least 32 bytes; one trailing newline
	// is ignored). Required when Pseudonymize is not empty.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether any field is pseudonymised.
func (c Config) Enabled() bool { return len(c.Pseudonymize) > 0 }

// Validate reports the first problem in c, saying how to fix it. It does not
// read the key file; New does.
func (c Config) Validate() error {
	for i, f := range c.Pseudonymize {
		if !slices.Contains(Fields(), f) {
			return fmt.Errorf("privacy.pseudonymize[%d]: unknown field %q; the fields are source_ip and user", i, f)
		}
		if slices.Contains(c.Pseudonymize[:i], f) {
			return fmt.Errorf("privacy.pseudonymize[%d]: %q is listed twice; list each field once", i, f)
		}
	}
	switch {
	case c.Enabled() && c.KeyFile == "":
		return errors.New("privacy.key_file: required when privacy.pseudonymize is set; point it at a file holding at least 32 random bytes")
	case !c.Enabled() && c.KeyFile != "":
		return errors.New("privacy.key_file is set but privacy.pseudonymize is empty; list the fields to pseudonymise (source_ip, user) or remove key_file")
	}
	return nil
}

// keyState is one key and the fields it applies to; swapped whole on Reload.
type keyState struct {
	key      []byte
	sourceIP bool
	user     bool
	id       string
}

// Pseudonymizer replaces personal data by keyed pseudonyms. It is safe for
// concurrent use, and Reload swaps its key for every holder at once. A nil
// *Pseudonymizer, or one built from a disabled Config, changes nothing.
type Pseudonymizer struct {
	state atomic.Pointer[keyState]
}

// New validates cfg, reads its key file and returns a Pseudonymizer.
func New(cfg Config) (*Pseudonymizer, error) {
	st, err := load(cfg)
	if err != nil {
		return nil, err
	}
	p := &Pseudonymizer{}
	p.state.Store(st)
	return p, nil
}

// Use puts q's key and fields in force for every holder of p; q is
// typically built by New from a new config, so that reading its key file
// (which can fail) comes before anything changes.
func (p *Pseudonymizer) Use(q *Pseudonymizer) { p.state.Store(q.current()) }

// Equal reports whether p and q pseudonymise the same fields under the same
// key, so that they give the same pseudonyms.
func (p *Pseudonymizer) Equal(q *Pseudonymizer) bool {
	a, b := p.current(), q.current()
	if !a.any() || !b.any() {
		return a.any() == b.any()
	}
	return a.sourceIP == b.sourceIP && a.user == b.user && hmac.Equal(a.key, b.key)
}

func load(cfg Config) (*keyState, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := &keyState{}
	if !cfg.Enabled() {
		return st, nil
	}
	b, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("privacy.key_file cannot be read: %w; point it at a file holding at least %d random bytes (create one with: head -c 32 /dev/urandom | base64 > %s)",
			err, MinKeyBytes, cfg.KeyFile)
	}
	key := []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("privacy.key_file %s: the key has %d bytes, at least %d are needed; create one with: head -c 32 /dev/urandom | base64 > %s",
			cfg.KeyFile, len(key), MinKeyBytes, cfg.KeyFile)
	}
	st.key = key
	st.sourceIP = slices.Contains(cfg.Pseudonymize, FieldSourceIP)
	st.user = slices.Contains(cfg.Pseudonymize, FieldUser)
	st.id = hex.EncodeToString(st.mac("key-id", "")[:4])
	return st, nil
}

func (p *Pseudonymizer) current() *keyState {
	if p == nil {
		return nil
	}
	return p.state.Load()
}

// Enabled reports whether f is pseudonymised.
func (p *Pseudonymizer) Enabled(f Field) bool {
	return p.current().enabled(f)
}

// KeyID returns a short fingerprint of the key in use, safe to log so that an
// operator can tell which key produced a pseudonym; empty when disabled.
func (p *Pseudonymizer) KeyID() string {
	if st := p.current(); st != nil {
		return st.id
	}
	return ""
}

// Pseudonym returns the pseudonym of value as field f, or value unchanged
// when f is not pseudonymised or value is empty. See PseudonymIP and
// PseudonymUser for the forms.
func (p *Pseudonymizer) Pseudonym(f Field, value string) string {
	st := p.current()
	if value == "" || !st.enabled(f) {
		return value
	}
	return st.pseudonym(f, value)
}

// any reports whether st pseudonymises any field.
func (st *keyState) any() bool { return st != nil && (st.sourceIP || st.user) }

func (st *keyState) enabled(f Field) bool {
	if st == nil {
		return false
	}
	switch f {
	case FieldSourceIP:
		return st.sourceIP
	case FieldUser:
		return st.user
	}
	return false
}

func (st *keyState) pseudonym(f Field, value string) string {
	if f == FieldSourceIP {
		if a, err := netip.ParseAddr(value); err == nil {
			return st.ipPseudonym(a).String()
		}
		return st.ipFromMAC(st.mac(string(FieldSourceIP), value)).String()
	}
	return userPrefix + hex.EncodeToString(st.mac(string(f), value)[:12])
}

// userPrefix marks a user pseudonym: "u_" and 24 hex digits (96 bits).
const userPrefix = "u_"

// ipPseudonym maps an address to one in 2001:db8::/32, the IPv6 documentation
// prefix that is never routed, so a pseudonym still parses as an address
// (event.Event keeps it in a netip.Addr) yet cannot be mistaken for a real
// peer. The 96 remaining bits come from the HMAC. IPv4 and IPv4-mapped IPv6
// forms of one address map alike.
func (st *keyState) ipPseudonym(a netip.Addr) netip.Addr {
	return st.ipFromMAC(st.mac(string(FieldSourceIP), a.Unmap().WithZone("").String()))
}

func (st *keyState) ipFromMAC(m []byte) netip.Addr {
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	copy(b[4:], m[:12])
	return netip.AddrFrom16(b)
}

// mac is HMAC-SHA256 over the domain, a NUL and the value, so one string
// pseudonymised as an IP and as a user gives unrelated results.
func (st *keyState) mac(domain, value string) []byte {
	h := hmac.New(sha256.New, st.key)
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return h.Sum(nil)
}
