package detect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Operator lists. A rule file may declare named lists under a top-level
// `lists:` key, and the daemon's config (detect.lists) fills them in or adds
// more; a list of the same name in the config replaces the rule files'.
// A list holds values (user names, paths, endpoints: `user in
// lists.honey_users` in an expression) or address ranges (CIDRs: the
// derived field source_list names the first such list, by name order,
// holding an event's source address, and alerts about an address in one
// carry it as label source_list, their severity raised by raise_severity
// levels).

// ListSpec is one list as written in YAML.
type ListSpec struct {
	Values []string `yaml:"values"`
	CIDRs  []string `yaml:"cidrs"`
	// File adds entries from a file, one per line; blank lines and lines
	// starting with # are skipped. It is read when the rules are loaded (and
	// again on every reload).
	File          string `yaml:"file"`
	RaiseSeverity int    `yaml:"raise_severity"`
}

// Lists is a validated, compiled set of named lists.
type Lists struct {
	specs map[string]ListSpec
	c     *listSet
}

// listSet is the compiled form expressions and derived fields read.
type listSet struct {
	memo   map[string]int // memo slots of list tests, see fastInList
	values map[string]map[string]struct{}
	asMap  map[string][]string // for the expression VM
	cidrs  []cidrList          // by name
}

type cidrList struct {
	name     string
	prefixes []netip.Prefix
	raise    int
}

var listNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Limits on lists.
const (
	maxListEntries = 1_000_000
	maxRaise       = 4
)

// NewLists validates specs, reads their files and compiles them. Errors
// name the list.
func NewLists(specs map[string]ListSpec) (*Lists, error) {
	ls := &Lists{specs: maps.Clone(specs), c: &listSet{values: map[string]map[string]struct{}{}, asMap: map[string][]string{}}}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		if err := ls.add(name, specs[name]); err != nil {
			errs = append(errs, fmt.Errorf("lists.%s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ls, nil
}

func (ls *Lists) add(name string, sp ListSpec) error {
	if !listNameRE.MatchString(name) {
		return errors.New("a list name is lower-case letters, digits and _, starting with a letter")
	}
	values, cidrs := sp.Values, sp.CIDRs
	if sp.File != "" {
		lines, err := readListFile(sp.File)
		if err != nil {
			return err
		}
		if len(cidrs) > 0 || (len(values) == 0 && looksLikeAddresses(lines)) {
			cidrs = append(slices.Clone(cidrs), lines...)
		} else {
			values = append(slices.Clone(values), lines...)
		}
	}
	switch {
	case len(values) > 0 && len(cidrs) > 0:
		return errors.New("a list holds values or cidrs, not both; split it in two")
	case len(values)+len(cidrs) > maxListEntries:
		return fmt.Errorf("%d entries; keep a list under %d", len(values)+len(cidrs), maxListEntries)
	case sp.RaiseSeverity < 0 || sp.RaiseSeverity > maxRaise:
		return fmt.Errorf("raise_severity is %d; set 0 to %d levels", sp.RaiseSeverity, maxRaise)
	case sp.RaiseSeverity > 0 && len(sp.Values) > 0:
		return errors.New("raise_severity applies to cidrs lists")
	}
	if sp.CIDRs != nil || len(cidrs) > 0 || sp.RaiseSeverity > 0 {
		cl := cidrList{name: name, raise: sp.RaiseSeverity}
		for _, s := range cidrs {
			p, err := parsePrefix(s)
			if err != nil {
				return err
			}
			cl.prefixes = append(cl.prefixes, p)
		}
		ls.c.cidrs = append(ls.c.cidrs, cl)
		return nil
	}
	set := make(map[string]struct{}, len(values))
	for _, v := range values {
		set[v] = struct{}{}
	}
	ls.c.values[name] = set
	ls.c.asMap[name] = slices.Clone(values)
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range (e.g. 192.0.2.0/24)", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range (e.g. 192.0.2.0/24)", s)
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

func readListFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read file: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

func looksLikeAddresses(lines []string) bool {
	for _, l := range lines {
		if _, err := parsePrefix(l); err != nil {
			return false
		}
	}
	return len(lines) > 0
}

// Merge returns ls with other's lists added, other's replacing ls's of the
// same name (the config's over the rule files').
func (ls *Lists) Merge(other map[string]ListSpec) (*Lists, error) {
	specs := map[string]ListSpec{}
	if ls != nil {
		maps.Copy(specs, ls.specs)
	}
	maps.Copy(specs, other)
	return NewLists(specs)
}

// Names returns the lists' names, sorted.
func (ls *Lists) Names() []string {
	if ls == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(ls.specs))
}

func (ls *Lists) compiled() *listSet {
	if ls == nil {
		return &listSet{}
	}
	return ls.c
}

// memoSlot returns the per-event memo slot of a list test.
func (l *listSet) memoSlot(k string) int {
	if l.memo == nil {
		l.memo = map[string]int{}
	}
	if i, ok := l.memo[k]; ok {
		return i
	}
	l.memo[k] = len(l.memo)
	return len(l.memo) - 1
}

// sourceList returns the first CIDR list holding a, and its severity raise.
func (l *listSet) sourceList(a netip.Addr) (string, int) {
	if l == nil {
		return "", 0
	}
	a = a.Unmap()
	for _, cl := range l.cidrs {
		for _, p := range cl.prefixes {
			if p.Contains(a) {
				return cl.name, cl.raise
			}
		}
	}
	return "", 0
}
