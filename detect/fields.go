package detect

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Derived fields are computed from an event's fields and read like them in
// match expressions, group_by, distinct and then_new:
//
//	source_prefix  the source address masked to a network (default /24 for
//	               IPv4, /64 for IPv6), in CIDR form: 203.0.113.0/24
//	status_class   "2xx", "4xx", ... from status
//	source_list    the name of the first operator CIDR list (lists.go)
//	               that holds the source address, "" when none does
const (
	defaultPrefixV4 = 24
	defaultPrefixV6 = 64
)

// serviceFields are set by services, never by their clients, and take few
// values: a rule grouped only by them has few, busy groups (see hot.go).
var serviceFields = []string{"service", "endpoint", "status", "status_class"}

func isServiceField(f string) bool { return slices.Contains(serviceFields, f) }

// field reads one event field as a group key part and as a label value.
type field struct {
	name  string
	key   func(dst []byte, c *evalCtx) ([]byte, bool)
	label func(c *evalCtx) string
}

func newField(name string) field {
	f := field{name: name}
	if k, ok := strings.CutPrefix(name, "attrs."); ok {
		f.label = func(c *evalCtx) string { return c.ev.Attrs[k] }
	}
	switch name {
	case "source_ip":
		f.key = func(dst []byte, c *evalCtx) ([]byte, bool) {
			if !c.ev.SourceIP.IsValid() {
				return dst, false
			}
			b := c.ev.SourceIP.As16()
			return append(dst, b[:]...), true
		}
		f.label = (*evalCtx).sourceIP
		return f
	case "source_prefix":
		f.key = func(dst []byte, c *evalCtx) ([]byte, bool) {
			p := c.prefix()
			if !p.IsValid() {
				return dst, false
			}
			b := p.Addr().As16()
			return append(append(dst, b[:]...), byte(p.Bits())), true
		}
		f.label = (*evalCtx).sourcePrefix
		return f
	case "status":
		f.label = func(c *evalCtx) string { return strconv.Itoa(c.ev.Status) }
	case "status_class":
		f.label = (*evalCtx).statusClass
	case "source_list":
		f.label = (*evalCtx).sourceList
	default:
		if sf, ok := stringField(name); ok {
			f.label = func(c *evalCtx) string { return sf(c) }
		}
	}
	label := f.label
	f.key = func(dst []byte, c *evalCtx) ([]byte, bool) {
		v := label(c)
		if v == "" {
			return dst, false
		}
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		return append(dst, v...), true
	}
	return f
}

// derivedConfig is what derived fields need beyond the event.
type derivedConfig struct {
	v4Bits, v6Bits int
	lists          *listSet
}

// prefix is the source address masked to its network; invalid without one.
func (c *evalCtx) prefix() netip.Prefix {
	if !c.prefixDone {
		c.pfx, c.pfxStr = netip.Prefix{}, ""
		if a := c.ev.SourceIP; a.IsValid() {
			a = a.Unmap()
			bits := c.cfg.v6Bits
			if a.Is4() {
				bits = c.cfg.v4Bits
			}
			c.pfx, _ = a.Prefix(bits)
		}
		c.prefixDone = true
	}
	return c.pfx
}

func (c *evalCtx) sourcePrefix() string {
	p := c.prefix()
	if p.IsValid() && c.pfxStr == "" {
		c.pfxStr = p.String()
	}
	return c.pfxStr
}

var statusClasses = [...]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (c *evalCtx) statusClass() string {
	if i := c.ev.Status / 100; i >= 1 && i <= 5 {
		return statusClasses[i]
	}
	return ""
}

func (c *evalCtx) sourceList() string {
	if !c.listDone {
		c.list = ""
		if c.ev.SourceIP.IsValid() {
			c.list, _ = c.cfg.lists.sourceList(c.ev.SourceIP)
		}
		c.listDone = true
	}
	return c.list
}

// prefixOf returns the network of an address label value as a
// source_prefix label value would read, or "" when v is not an address.
func prefixOf(v string, cfg *derivedConfig) string {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := cfg.v6Bits
	if a.Is4() {
		bits = cfg.v4Bits
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}
