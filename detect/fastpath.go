package detect

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// The fast path translates the common shape of a match expression
// (comparisons of event fields with constants, in-lists, regular expressions
// and string operators joined by and/or/not) into Go closures. It runs an
// order of magnitude faster than the expr VM over a struct environment and
// allocates nothing. Any node it does not know makes compileFast return nil,
// and the expression runs on the VM instead; a differential test checks that
// both give the same answer.

type (
	boolFn func(*evalCtx) bool
	strFn  func(*evalCtx) string
	numFn  func(*evalCtx) float64
)

// compileFast returns a closure equivalent to the checked expression tree n,
// or nil when n uses anything outside the fast subset; ls holds the lists
// `in lists.NAME` reads.
func compileFast(n ast.Node, ls *listSet) func(*evalCtx) bool {
	fc := fastc{ls: ls}
	f, ok := fc.fastBool(n)
	if !ok {
		return nil
	}
	return f
}

// fastc translates one expression.
type fastc struct{ ls *listSet }

func (fc fastc) fastBool(n ast.Node) (boolFn, bool) {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*evalCtx) bool { return v }, true
	case *ast.ConstantNode:
		if v, ok := n.Value.(bool); ok {
			return func(*evalCtx) bool { return v }, true
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			if f, ok := fc.fastBool(n.Node); ok {
				return func(c *evalCtx) bool { return !f(c) }, true
			}
		}
	case *ast.BinaryNode:
		return fc.fastBinary(n)
	}
	return nil, false
}

func (fc fastc) fastBinary(n *ast.BinaryNode) (boolFn, bool) {
	switch n.Operator {
	case "&&", "and", "||", "or":
		l, ok1 := fc.fastBool(n.Left)
		r, ok2 := fc.fastBool(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		if n.Operator == "&&" || n.Operator == "and" {
			return func(c *evalCtx) bool { return l(c) && r(c) }, true
		}
		return func(c *evalCtx) bool { return l(c) || r(c) }, true
	case "==", "!=", "<", "<=", ">", ">=":
		return fc.fastCompare(n)
	case "in":
		return fc.fastIn(n)
	case "matches":
		l, ok := fastStr(n.Left)
		pat, isConst := constString(n.Right)
		if !ok || !isConst {
			return nil, false
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, false
		}
		return func(c *evalCtx) bool { return re.MatchString(l(c)) }, true
	case "startsWith", "endsWith", "contains":
		l, ok1 := fastStr(n.Left)
		r, ok2 := fastStr(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		op := map[string]func(string, string) bool{
			"startsWith": strings.HasPrefix, "endsWith": strings.HasSuffix, "contains": strings.Contains,
		}[n.Operator]
		return func(c *evalCtx) bool { return op(l(c), r(c)) }, true
	}
	return nil, false
}

func (fc fastc) fastCompare(n *ast.BinaryNode) (boolFn, bool) {
	if l, ok := fastStr(n.Left); ok {
		r, ok := fastStr(n.Right)
		if !ok {
			return nil, false
		}
		switch n.Operator {
		case "==":
			return func(c *evalCtx) bool { return l(c) == r(c) }, true
		case "!=":
			return func(c *evalCtx) bool { return l(c) != r(c) }, true
		case "<":
			return func(c *evalCtx) bool { return l(c) < r(c) }, true
		case "<=":
			return func(c *evalCtx) bool { return l(c) <= r(c) }, true
		case ">":
			return func(c *evalCtx) bool { return l(c) > r(c) }, true
		default:
			return func(c *evalCtx) bool { return l(c) >= r(c) }, true
		}
	}
	if l, ok := fc.fastBool(n.Left); ok && (n.Operator == "==" || n.Operator == "!=") {
		r, ok := fc.fastBool(n.Right)
		if !ok {
			return nil, false
		}
		if n.Operator == "==" {
			return func(c *evalCtx) bool { return l(c) == r(c) }, true
		}
		return func(c *evalCtx) bool { return l(c) != r(c) }, true
	}
	l, ok1 := fastNum(n.Left)
	r, ok2 := fastNum(n.Right)
	if !ok1 || !ok2 {
		return nil, false
	}
	switch n.Operator {
	case "==":
		return func(c *evalCtx) bool { return l(c) == r(c) }, true
	case "!=":
		return func(c *evalCtx) bool { return l(c) != r(c) }, true
	case "<":
		return func(c *evalCtx) bool { return l(c) < r(c) }, true
	case "<=":
		return func(c *evalCtx) bool { return l(c) <= r(c) }, true
	case ">":
		return func(c *evalCtx) bool { return l(c) > r(c) }, true
	default:
		return func(c *evalCtx) bool { return l(c) >= r(c) }, true
	}
}

func (fc fastc) fastIn(n *ast.BinaryNode) (boolFn, bool) {
	if m, ok := n.Right.(*ast.MemberNode); ok {
		return fc.fastInList(n.Left, m)
	}
	cn, ok := n.Right.(*ast.ConstantNode)
	if !ok {
		return nil, false
	}
	switch set := cn.Value.(type) {
	case map[string]struct{}:
		l, ok := fastStr(n.Left)
		if !ok {
			return nil, false
		}
		if len(set) <= 8 {
			// A few constants (the HTTP methods): comparing beats hashing.
			vals := slices.Sorted(maps.Keys(set))
			return func(c *evalCtx) bool { return slices.Contains(vals, l(c)) }, true
		}
		return func(c *evalCtx) bool { _, in := set[l(c)]; return in }, true
	case map[int]struct{}:
		if id, ok := n.Left.(*ast.IdentifierNode); ok && id.Value == "status" {
			// Statuses are 100..599 (validated): a bitmap answers in a load.
			var bits [10]uint64
			for st := range set {
				if st >= 0 && st < 640 {
					bits[st>>6] |= 1 << (st & 63)
				}
			}
			return func(c *evalCtx) bool {
				st := c.ev.Status
				return st >= 0 && st < 640 && bits[st>>6]&(1<<(st&63)) != 0
			}, true
		}
	}
	return nil, false
}

// smallList is the size up to which a list is searched rather than hashed.
const smallList = 8

// fastInList translates `x in lists.NAME`.
func (fc fastc) fastInList(left ast.Node, m *ast.MemberNode) (boolFn, bool) {
	id, ok := m.Node.(*ast.IdentifierNode)
	name, isConst := constString(m.Property)
	if !ok || id.Value != "lists" || !isConst || m.Method {
		return nil, false
	}
	set := fc.ls.values[name]
	l, ok := fastStr(left)
	if !ok || set == nil {
		return nil, false
	}
	in := func(v string) bool { _, in := set[v]; return in }
	if len(set) <= smallList {
		// A short list is searched faster than it is hashed.
		vs := slices.Collect(maps.Keys(set))
		in = func(v string) bool { return slices.Contains(vs, v) }
	}
	// Several rules test the same field against the same list (the login
	// endpoints): the answer is kept for the event.
	id, isField := left.(*ast.IdentifierNode)
	if !isField {
		return func(c *evalCtx) bool { return in(l(c)) }, true
	}
	slot := fc.ls.memoSlot(name + "\x00" + id.Value)
	return func(c *evalCtx) bool {
		if slot < len(c.memo) {
			if m := &c.memo[slot]; m.gen == c.gen {
				return m.v
			}
		}
		v := in(l(c))
		if slot < len(c.memo) {
			c.memo[slot] = memoEntry{gen: c.gen, v: v}
		}
		return v
	}, true
}

func constString(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.ConstantNode:
		s, ok := n.Value.(string)
		return s, ok
	}
	return "", false
}

func fastStr(n ast.Node) (strFn, bool) {
	if s, ok := constString(n); ok {
		return func(*evalCtx) string { return s }, true
	}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return stringField(n.Value)
	case *ast.ChainNode:
		return fastStr(n.Node)
	case *ast.MemberNode:
		id, ok1 := n.Node.(*ast.IdentifierNode)
		key, ok2 := constString(n.Property)
		if !ok1 || !ok2 || id.Value != "attrs" || n.Method {
			return nil, false
		}
		return func(c *evalCtx) string { return c.ev.Attrs[key] }, true
	case *ast.BuiltinNode:
		if (n.Name == "lower" || n.Name == "upper") && len(n.Arguments) == 1 {
			arg, ok := fastStr(n.Arguments[0])
			if !ok {
				return nil, false
			}
			if n.Name == "lower" {
				return func(c *evalCtx) string { return strings.ToLower(arg(c)) }, true
			}
			return func(c *evalCtx) string { return strings.ToUpper(arg(c)) }, true
		}
	}
	return nil, false
}

func stringField(name string) (strFn, bool) {
	switch name {
	case "service":
		return func(c *evalCtx) string { return c.ev.Service }, true
	case "request_id":
		return func(c *evalCtx) string { return c.ev.RequestID }, true
	case "method":
		return func(c *evalCtx) string { return c.ev.Method }, true
	case "endpoint":
		return func(c *evalCtx) string { return c.ev.Endpoint }, true
	case "path":
		return func(c *evalCtx) string { return c.ev.Path }, true
	case "source_ip":
		return (*evalCtx).sourceIP, true
	case "user":
		return func(c *evalCtx) string { return c.ev.User }, true
	case "client_id":
		return func(c *evalCtx) string { return c.ev.ClientID }, true
	case "user_agent":
		return func(c *evalCtx) string { return c.ev.UserAgent }, true
	case "source_prefix":
		return (*evalCtx).sourcePrefix, true
	case "status_class":
		return (*evalCtx).statusClass, true
	case "source_list":
		return (*evalCtx).sourceList, true
	}
	return nil, false
}

func fastNum(n ast.Node) (numFn, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := float64(n.Value)
		return func(*evalCtx) float64 { return v }, true
	case *ast.FloatNode:
		v := n.Value
		return func(*evalCtx) float64 { return v }, true
	case *ast.ConstantNode:
		switch v := n.Value.(type) {
		case int:
			f := float64(v)
			return func(*evalCtx) float64 { return f }, true
		case float64:
			return func(*evalCtx) float64 { return v }, true
		}
	case *ast.UnaryNode:
		if n.Operator == "-" {
			if f, ok := fastNum(n.Node); ok {
				return func(c *evalCtx) float64 { return -f(c) }, true
			}
		}
	case *ast.IdentifierNode:
		switch n.Value {
		case "status":
			return func(c *evalCtx) float64 { return float64(c.ev.Status) }, true
		case "latency_ms":
			return func(c *evalCtx) float64 { return c.ev.LatencyMS }, true
		}
	}
	return nil, false
}
