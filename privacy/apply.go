package privacy

import (
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
)

// Event returns a copy of e with its source IP and user pseudonymised as
// configured, for logging or storing. The source IP becomes an address in
// 2001:db8::/32 (see Pseudonym). Attrs is shared with e, not copied.
func (p *Pseudonymizer) Event(e event.Event) event.Event {
	st := p.current()
	if st.enabled(FieldSourceIP) && e.SourceIP.IsValid() {
		e.SourceIP = st.ipPseudonym(e.SourceIP)
	}
	if st.enabled(FieldUser) && e.User != "" {
		e.User = st.pseudonym(FieldUser, e.User)
	}
	return e
}

// Alert returns a copy of a in which the labels named after pseudonymised
// fields (source_ip, user) carry pseudonyms, and every whole-word occurrence
// of their original values in the summary, description and sample is
// replaced too. When a label changed, the fingerprint is replaced by a keyed
// hash of the same length (hex fingerprints stay hex), because an unkeyed
// fingerprint over labels could be reversed by trying every IPv4 address.
// The result is stable: the same alert always maps to the same copy under
// one key. Labels and Sample are copied; a is not modified.
func (p *Pseudonymizer) Alert(a detect.Alert) detect.Alert {
	st := p.current()
	if st == nil || (!st.sourceIP && !st.user) {
		return a
	}
	var repl []replacement
	for _, f := range Fields() {
		v, ok := a.Labels[string(f)]
		if !ok || v == "" || !st.enabled(f) {
			continue
		}
		repl = append(repl, replacement{old: v, new: st.pseudonym(f, v), ip: f == FieldSourceIP})
	}
	if len(repl) == 0 {
		return a
	}
	// Longer values first, so a value inside another is not split.
	slices.SortFunc(repl, func(x, y replacement) int { return len(y.old) - len(x.old) })
	a.Labels = maps.Clone(a.Labels)
	for _, f := range Fields() {
		for _, r := range repl {
			if st.enabled(f) && a.Labels[string(f)] == r.old && r.ip == (f == FieldSourceIP) {
				a.Labels[string(f)] = r.new
			}
		}
	}
	a.Summary = replaceWords(a.Summary, repl)
	a.Description = replaceWords(a.Description, repl)
	if a.Sample != nil {
		s := make([]string, len(a.Sample))
		for i, v := range a.Sample {
			s[i] = replaceWords(v, repl)
		}
		a.Sample = s
	}
	a.Fingerprint = st.fingerprint(a.Fingerprint)
	return a
}

func (st *keyState) fingerprint(fp string) string {
	if fp == "" {
		return ""
	}
	m := hex.EncodeToString(st.mac("fingerprint", fp))
	if n := len(fp); n <= len(m) && isHex(fp) {
		return m[:n]
	}
	return m[:32]
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// replacement is one value to replace in text, and by what.
type replacement struct {
	old, new string
	ip       bool // an address: '.' and ':' may continue it
}

// replaceWords replaces each whole-word occurrence of a replacement's old
// value, trying repl in order. An occurrence is whole when the characters
// around it cannot continue the value (see boundary), so 10.0.0.1 inside
// 10.0.0.10 and bob inside bobcat are left alone.
func replaceWords(s string, repl []replacement) string {
	if s == "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		for _, r := range repl {
			if strings.HasPrefix(s[i:], r.old) && boundary(s, i-1, -1, r.ip) && boundary(s, i+len(r.old), 1, r.ip) {
				b.WriteString(r.new)
				i += len(r.old)
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// boundary reports whether the character at i, next to a match (dir is -1
// before it, +1 after it), ends the match as a word: outside s, or not a
// letter, digit, '_' or non-ASCII byte. A '.' (and for addresses a ':')
// counts as a boundary only when what lies beyond it does too, so "from
// 10.0.0.1." matches while 10.0.0.1.5, fe80::1 inside 2001:fe80::1 and alice
// inside alice.smith do not; "user:alice" matches.
func boundary(s string, i, dir int, ip bool) bool {
	if i < 0 || i >= len(s) {
		return true
	}
	switch c := s[i]; {
	case c == '.' || ip && c == ':':
		j := i + dir
		return j < 0 || j >= len(s) || !wordByte(s[j])
	default:
		return !wordByte(c)
	}
}

func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c >= 0x80
}

// Addr returns the pseudonym of an address, or a unchanged when source_ip is
// not pseudonymised; for log attributes of peers such as admin API clients.
func (p *Pseudonymizer) Addr(a netip.Addr) netip.Addr {
	st := p.current()
	if !st.enabled(FieldSourceIP) || !a.IsValid() {
		return a
	}
	return st.ipPseudonym(a)
}
