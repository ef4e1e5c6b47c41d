package emit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses addresses ("10.0.0.7", "::1") and CIDR prefixes
// ("10.0.0.0/8", "fd00::/8") for WithTrustedProxies.
func ParseTrustedProxies(list ...string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("emit: trusted proxy %q is neither an IP address nor a CIDR prefix", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// proxies is the set of trusted proxy networks.
type proxies []netip.Prefix

func (ps proxies) trusts(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the address of the client that sent r, and whether r
// came from a trusted proxy. The immediate peer is the client unless it is a
// trusted proxy; then X-Forwarded-For is read from right to left, skipping
// trusted proxies, and the first other address is the client. A malformed
// entry stops the walk at the last trusted hop, so a client can never choose
// the address it is reported under by writing the header itself.
func (ps proxies) clientIP(r *http.Request) (netip.Addr, bool) {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || !ps.trusts(peer) {
		return peer, false
	}
	client := peer
	values := r.Header["X-Forwarded-For"]
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			a := parseHostPort(strings.TrimSpace(entry))
			if !a.IsValid() {
				return client, true
			}
			client = a
			if !ps.trusts(a) {
				return client, true
			}
		}
	}
	return client, true
}

// parseHostPort parses "ip", "ip:port" or "[ipv6]:port" into an address
// without zone, IPv4-mapped IPv6 addresses unmapped; the zero Addr when s is
// none of these.
func parseHostPort(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}
