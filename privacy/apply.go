package privacy

import (
	"net/netip"

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

// Label returns the pseudonym of an alert label's value when the label is
// named after a pseudonymised field (source_ip, user), else value
// unchanged. The detection engine calls it (detect.Options.Label) for each
// label of a new alert before it computes the fingerprint and renders the
// templates, so every alert that leaves detection, however it leaves
// (notifications, the start-up announcement, reconciliation, the API),
// carries only pseudonyms, and a fingerprint over them cannot be reversed
// without the key.
func (p *Pseudonymizer) Label(name, value string) string {
	if name == "source_prefix" {
		return p.Network(value)
	}
	return p.Pseudonym(Field(name), value)
}

// Network returns the pseudonym of a network (a source_prefix label such as
// 203.0.113.0/24) when source_ip is pseudonymised: a network of 2001:db8::/32,
// /96, keyed like address pseudonyms, so that alerts about one network keep
// one pseudonym without telling where it is. Else it returns prefix.
func (p *Pseudonymizer) Network(prefix string) string {
	st := p.current()
	if prefix == "" || !st.enabled(FieldSourceIP) {
		return prefix
	}
	a := st.ipFromMAC(st.mac("source_prefix", prefix))
	return netip.PrefixFrom(a, 96).Masked().String()
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
