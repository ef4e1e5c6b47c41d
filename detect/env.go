package detect

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/event"
)

// Env is the environment a rule's expressions see: one event, its fields
// named as the JSON keys of the wire schema. source_ip is a string ("" when
// absent), latency_ms is 0 when absent, and a missing attrs key reads as "".
type Env struct {
	TS        time.Time         `expr:"ts"`
	Service   string            `expr:"service"`
	RequestID string            `expr:"request_id"`
	Method    string            `expr:"method"`
	Endpoint  string            `expr:"endpoint"`
	Status    int               `expr:"status"`
	Path      string            `expr:"path"`
	LatencyMS float64           `expr:"latency_ms"`
	SourceIP  string            `expr:"source_ip"`
	User      string            `expr:"user"`
	ClientID  string            `expr:"client_id"`
	UserAgent string            `expr:"user_agent"`
	Attrs     map[string]string `expr:"attrs"`
}

// maxExprLen and maxExprNodes bound a rule expression; rules are written by
// operators, but a bound keeps a mistake from becoming a slow rule.
const (
	maxExprLen   = 4096
	maxExprNodes = 500
)

// evalCtx is the per-event evaluation context shared by every predicate of an
// engine. Values that cost something to produce (the IP as a string, the
// expr environment) are produced at most once per event, on first use.
type evalCtx struct {
	ev      *event.Event
	ip      string
	ipDone  bool
	env     Env
	envDone bool
	vm      vm.VM
}

func (c *evalCtx) reset(ev *event.Event) {
	c.ev = ev
	c.ipDone = false
	c.envDone = false
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
			UserAgent: e.UserAgent, Attrs: e.Attrs,
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

// compilePredicate compiles src as a boolean over Env.
func compilePredicate(src string) (*predicate, error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("expression is %d bytes; keep it under %d", len(src), maxExprLen)
	}
	prog, err := expr.Compile(src, expr.Env(Env{}), expr.AsBool(), expr.MaxNodes(maxExprNodes))
	if err != nil {
		return nil, err
	}
	p := &predicate{src: src, prog: prog}
	p.fast = compileFast(prog.Node())
	return p, nil
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
