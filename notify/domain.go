package notify

import (
	"encoding/binary"
	"errors"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/detect"
)

// Which values can a label of an alert have? Silences and routes are checked
// against this: a silence whose every matcher accepts every value of its
// label would mute every alert, and a route condition that accepts no value
// can never match. The answers are exact: a condition and a label's values
// are both regular languages, and domainCheck decides inclusion and
// disjointness by walking the product of their automata.

// labelDomain returns a regular expression for every value label may have on
// an alert. Alerts always carry rule (a rule name, as detect accepts it),
// severity (one of detect.Severities) and category (text that is not blank);
// incident_severity is a severity, or empty for an alert without an
// incident; any other label (a group_by field, incident_id) is any text,
// and a missing label has the empty value.
func labelDomain(label string) string {
	switch label {
	case "rule":
		return `[a-z][a-z0-9_]{0,63}`
	case "severity":
		return severityDomain()
	case "incident_severity":
		return `(?:` + severityDomain() + `)?`
	case "category":
		// At least one character that unicode.IsSpace does not call space.
		return `(?s:.*[^\t\n\v\f\r\x{85}\p{Z}].*)`
	default:
		return `(?s:.*)`
	}
}

func severityDomain() string {
	quoted := make([]string, len(detect.Severities))
	for i, s := range detect.Severities {
		quoted[i] = regexp.QuoteMeta(s)
	}
	return strings.Join(quoted, "|")
}

// anchored wraps a matcher's regular expression so it must match the whole
// value, with '.' matching any character, newlines included (label values
// come from traffic and may hold a newline).
func anchored(expr string) string { return `^(?s:` + expr + `)$` }

// errTooComplex means a check needed more steps than maxDomainSteps.
var errTooComplex = errors.New("regular expression too complex to check")

// maxDomainSteps bounds the automaton steps of one check, so that a
// pathological expression cannot make a silence request expensive.
const maxDomainSteps = 100_000

// domainCheck reports whether pattern (a whole-value regular expression, as
// users write it) holds for every value of label when want is true, or for
// none of them when want is false. It explores, breadth first, the pairs of
// states the label's automaton and the pattern's reach on the same text, and
// stops at the first value the pattern decides the other way.
func domainCheck(label, pattern string, want bool) (bool, error) {
	dom, err := newMachine(anchored(labelDomain(label)))
	if err != nil {
		return false, err
	}
	pat, err := newMachine(anchored(pattern))
	if err != nil {
		return false, err
	}
	type pair struct{ d, p machineState }
	start := pair{dom.start(), pat.start()}
	seen := map[string]bool{start.d.key() + "|" + start.p.key(): true}
	queue := []pair{start}
	alphabet := representatives(dom.prog, pat.prog)
	steps := 0
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if dom.accepts(s.d) && pat.accepts(s.p) != want {
			return false, nil
		}
		for _, r := range alphabet {
			nd := dom.step(s.d, r)
			if len(nd.pcs) == 0 {
				continue // no value of the label goes on this way
			}
			if steps++; steps > maxDomainSteps {
				return false, errTooComplex
			}
			next := pair{nd, pat.step(s.p, r)}
			if k := next.d.key() + "|" + next.p.key(); !seen[k] {
				seen[k] = true
				queue = append(queue, next)
			}
		}
	}
	return true, nil
}

// matchesSome reports whether a whole-value regular expression matches at
// least one value label can have.
func matchesSome(label, pattern string) (bool, error) {
	none, err := domainCheck(label, pattern, false)
	return !none, err
}

// machine runs a compiled regular expression as a set of threads, one rune
// at a time, the way regexp's NFA does, but for every text at once.
type machine struct {
	prog  *syntax.Prog
	mark  []uint32 // mark[pc] == gen: pc visited by the current closure
	gen   uint32
	stack []uint32
}

func newMachine(expr string) (*machine, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	p, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	return &machine{prog: p, mark: make([]uint32, len(p.Inst))}, nil
}

// machineState is a set of threads between two runes: the instructions they
// resume at, and, for empty-width assertions, what kind of rune came last:
// -1 at the start, '\n', 'a' for a word character, ' ' for any other.
type machineState struct {
	pcs  []uint32
	prev rune
}

func (m *machine) start() machineState {
	return machineState{pcs: []uint32{uint32(m.prog.Start)}, prev: -1}
}

func (s machineState) key() string {
	b := binary.AppendVarint(nil, int64(s.prev))
	for _, pc := range s.pcs {
		b = binary.AppendUvarint(b, uint64(pc))
	}
	return string(b)
}

// closure follows s's threads through every instruction that consumes no
// rune, at a position where the assertions in ctx hold. It returns the
// instructions that consume a rune, and whether a thread reached a match.
func (m *machine) closure(s machineState, ctx syntax.EmptyOp) (consumers []uint32, match bool) {
	m.gen++
	m.stack = append(m.stack[:0], s.pcs...)
	for len(m.stack) > 0 {
		pc := m.stack[len(m.stack)-1]
		m.stack = m.stack[:len(m.stack)-1]
		if m.mark[pc] == m.gen {
			continue
		}
		m.mark[pc] = m.gen
		in := &m.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			m.stack = append(m.stack, in.Out, in.Arg)
		case syntax.InstCapture, syntax.InstNop:
			m.stack = append(m.stack, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^ctx == 0 {
				m.stack = append(m.stack, in.Out)
			}
		case syntax.InstMatch:
			match = true
		case syntax.InstFail:
		default:
			consumers = append(consumers, pc)
		}
	}
	return consumers, match
}

// accepts reports whether the text read so far matches if it ends here.
func (m *machine) accepts(s machineState) bool {
	_, match := m.closure(s, syntax.EmptyOpContext(s.prev, -1))
	return match
}

// step reads rune r.
func (m *machine) step(s machineState, r rune) machineState {
	consumers, _ := m.closure(s, syntax.EmptyOpContext(s.prev, r))
	next := machineState{prev: contextOf(r)}
	for _, pc := range consumers {
		in := &m.prog.Inst[pc]
		var ok bool
		switch in.Op {
		case syntax.InstRuneAny:
			ok = true
		case syntax.InstRuneAnyNotNL:
			ok = r != '\n'
		default:
			ok = in.MatchRune(r)
		}
		if ok {
			next.pcs = append(next.pcs, in.Out)
		}
	}
	slices.Sort(next.pcs)
	next.pcs = slices.Compact(next.pcs)
	return next
}
func contextOf(r rune) rune {
	switch {
	case r == '\n':
		return '\n'
	case syntax.IsWordChar(r):
		return 'a'
	default:
		return ' '
	}
}

// representatives returns one rune of each class of runes that no
// instruction of the programs, and no assertion, tells apart: the classes
// are cut at every bound of every rune range (and of every case-folding
// orbit), at '\n' and at word characters. Surrogates, which no valid text
// holds, are left out.
func representatives(progs ...*syntax.Prog) []rune {
	cuts := []rune{0, '\n', '\n' + 1, '0', '9' + 1, 'A', 'Z' + 1, '_', '_' + 1, 'a', 'z' + 1,
		0xD800, 0xE000, utf8.MaxRune + 1}
	for _, p := range progs {
		for _, in := range p.Inst {
			if in.Op != syntax.InstRune && in.Op != syntax.InstRune1 {
				continue
			}
			if len(in.Rune) == 1 {
				r := in.Rune[0]
				cuts = append(cuts, r, r+1)
				if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
					for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
						cuts = append(cuts, f, f+1)
					}
				}
				continue
			}
			for i := 0; i+1 < len(in.Rune); i += 2 {
				cuts = append(cuts, in.Rune[i], in.Rune[i+1]+1)
			}
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	reps := make([]rune, 0, len(cuts))
	for _, c := range cuts {
		if c <= utf8.MaxRune && (c < 0xD800 || c >= 0xE000) {
			reps = append(reps, c)
		}
	}
	return reps
}
