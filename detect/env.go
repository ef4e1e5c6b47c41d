package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/event"
)

// Env is the environment a rule's expressions see: one event, its fields
// named as the JSON keys of the wire schema, the derived fields (see
// fields.go) and the operator lists. source_ip is a string ("" when
// absent), latency_ms is 0 when absent, and a missing attrs key reads as "".
type Env struct {
	TS           time.Time           `expr:"ts"`
	Service      string              `expr:"service"`
	RequestID    string              `expr:"request_id"`
	Method       string              `expr:"method"`
	Endpoint     string              `expr:"endpoint"`
	Status       int                 `expr:"status"`
	Path         string              `expr:"path"`
	LatencyMS    float64             `expr:"latency_ms"`
	SourceIP     string              `expr:"source_ip"`
	User         string              `expr:"user"`
	ClientID     string              `expr:"client_id"`
	UserAgent    string              `expr:"user_agent"`
	Attrs        map[string]string   `expr:"attrs"`
	SourcePrefix string              `expr:"source_prefix"`
	StatusClass  string              `expr:"status_class"`
	SourceList   string              `expr:"source_list"`
	Lists        map[string][]string `expr:"lists"`
}

// maxExprLen and maxExprNodes bound a rule expression; rules are written by
// operators, but a bound keeps a mistake from becoming a slow rule.
const (
	maxExprLen   = 4096
	maxExprNodes = 500
)

// evalCtx is the per-event evaluation context shared by every predicate of an
// engine. Values that cost something to produce (the IP as a string, the
// prefix, the expr environment) are produced at most once per event, on
// first use.
type evalCtx struct {
	ev         *event.Event
	cfg        *derivedConfig
	ip         string
	ipDone     bool
	pfx        netip.Prefix
	pfxStr     string
	prefixDone bool
	list       string
	listDone   bool
	env        Env
	envDone    bool
	vm         vm.VM
	gen        uint32 // the event's number, for memo
	memo       []memoEntry
}

type memoEntry struct {
	gen uint32
	v   bool
}

func (c *evalCtx) reset(ev *event.Event) {
	c.ev = ev
	c.ipDone, c.prefixDone, c.listDone, c.envDone = false, false, false, false
	if c.gen++; c.gen == 0 { // wrapped: forget every answer
		clear(c.memo)
		c.gen = 1
	}
}

// release drops the event and the strings taken from it, which may point
// into a whole message that should not stay in memory until the next one.
func (c *evalCtx) release() {
	c.ev = nil
	if c.envDone {
		c.env = Env{}
		c.envDone = false
	}
}

func (c *evalCtx) sourceIP() string {
	if !c.ipDone {
		c.ip = ""
		if c.ev.SourceIP.IsValid() {
			c.ip = c.ev.SourceIP.String()
		}
		c.ipDone = true
	}
	return c.ip
}

func (c *evalCtx) exprEnv() *Env {
	if !c.envDone {
		e := c.ev
		c.env = Env{
			TS: e.Time, Service: e.Service, RequestID: e.RequestID, Method: e.Method,
			Endpoint: e.Endpoint, Status: e.Status, Path: e.Path, LatencyMS: e.LatencyMS,
			SourceIP: c.sourceIP(), User: e.User, ClientID: e.ClientID,
			UserAgent: e.UserAgent, Attrs: e.Attrs, SourcePrefix: c.sourcePrefix(),
			StatusClass: c.statusClass(), SourceList: c.sourceList(),
		}
		if c.cfg.lists != nil {
			c.env.Lists = c.cfg.lists.asMap
		}
		c.envDone = true
	}
	return &c.env
}

// predicate is one compiled boolean expression. fast is set when the
// expression could be translated into Go closures (see fastpath.go);
// otherwise prog runs on the context's reused expr VM.
type predicate struct {
	src  string
	prog *vm.Program
	fast func(*evalCtx) bool
}

// compilePredicate compiles src as a boolean over Env, with ls the lists
// it may name.
func compilePredicate(src string, ls *listSet) (*predicate, error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("expression is %d bytes; keep it under %d", len(src), maxExprLen)
	}
	prog, err := expr.Compile(src, expr.Env(Env{}), expr.AsBool(), expr.MaxNodes(maxExprNodes))
	if err != nil {
		return nil, err
	}
	node := prog.Node()
	if err := checkListRefs(node, ls); err != nil {
		return nil, err
	}
	p := &predicate{src: src, prog: prog}
	p.fast = compileFast(node, ls)
	return p, nil
}

// checkListRefs refuses a reference to a list that is not declared, or to a
// list of address ranges (those are read through source_list).
func checkListRefs(n ast.Node, ls *listSet) error {
	v := &listVisitor{ls: ls}
	ast.Walk(&n, v)
	return v.err
}

type listVisitor struct {
	ls  *listSet
	err error
}

func (v *listVisitor) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || v.err != nil {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "lists" {
		return
	}
	name, ok := constString(m.Property)
	switch {
	case !ok:
		v.err = errors.New("name a list with a constant: lists.NAME")
	case v.ls.isCIDR(name):
		v.err = fmt.Errorf("lists.%s holds address ranges; test it with source_list == %q", name, name)
	case v.ls.values[name] == nil:
		v.err = fmt.Errorf("lists.%s is not declared; declare it under lists: in a rule file, or under detect.lists in the config", name)
	}
}

func (l *listSet) isCIDR(name string) bool {
	for _, c := range l.cidrs {
		if c.name == name {
			return true
		}
	}
	return false
}

// eval reports whether the current event satisfies p. A runtime error (for
// example a nil map index) counts as false.
func (p *predicate) eval(c *evalCtx) bool {
	if p == nil {
		return true
	}
	if p.fast != nil {
		return p.fast(c)
	}
	out, err := c.vm.Run(p.prog, c.exprEnv())
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}
