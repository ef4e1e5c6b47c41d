package detect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-sec/vigil/event"
)

// sampleEvents is a spread of events to evaluate expressions on.
func sampleEvents() []*event.Event {
	var out []*event.Event
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []int{200, 201, 301, 401, 403, 404, 429, 500, 503}
	endpoints := []string{"/v1/auth/login", "/v1/auth/token", "/v1/invoices/{id}", "/healthz", ""}
	users := []string{"", "alice", "Bob", "admin", "x\x00y"}
	for i := range 60 {
		ev := &event.Event{
			Time: t0.Add(time.Duration(i) * time.Second), Service: []string{"auth", "billing"}[i%2],
			RequestID: fmt.Sprint(i), Method: []string{"GET", "POST"}[rng.IntN(2)],
			Endpoint: endpoints[rng.IntN(len(endpoints))], Status: statuses[rng.IntN(len(statuses))],
			Path: "/p", LatencyMS: float64(rng.IntN(2000)) / 3, User: users[rng.IntN(len(users))],
			UserAgent: []string{"curl/8", "Mozilla/5.0", "python-requests"}[rng.IntN(3)],
			Attrs:     map[string]string{"tenant": []string{"acme", "globex"}[rng.IntN(2)]},
		}
		if i%3 != 0 {
			ev.SourceIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(4))})
		}
		out = append(out, ev)
	}
	return out
}

// vmEval evaluates p on the expr VM only.
func vmEval(p *predicate, c *evalCtx) bool {
	var v vm.VM
	out, err := v.Run(p.prog, c.exprEnv())
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

var fastExprs = []string{
	`status == 401`,
	`status >= 500 && status <= 599`,
	`status in [401, 403]`,
	`status not in [401, 403] and method == "POST"`,
	`endpoint matches "^/v1/auth/"`,
	`endpoint startsWith "/v1/auth" || endpoint endsWith "{id}"`,
	`user_agent contains "curl"`,
	`lower(user) == "bob"`,
	`upper(method) != "GET"`,
	`source_ip == "192.0.2.1"`,
	`source_ip in ["192.0.2.1", "192.0.2.3"]`,
	`source_ip == ""`,
	`attrs.tenant == "acme"`,
	`attrs["tenant"] == "globex" && !(status < 300)`,
	`attrs.missing == ""`,
	`latency_ms > 500.5`,
	`latency_ms >= 100 and status != 200`,
	`status == 401.0`,
	`-status < -400`,
	`service > "b"`,
	`true`,
	`not false`,
	`(status == 200) == true`,
	`source_prefix == "192.0.2.0/24"`,
	`status_class == "4xx" && source_list == ""`,
	`user in lists.honey_users`,
	`path in lists.honey_paths || endpoint in lists.honey_paths`,
}

// testLists are the lists the expression tests may name.
func testLists(t testing.TB) *listSet {
	ls, err := NewLists(map[string]ListSpec{
		"honey_users": {Values: []string{"alice", "backup-admin"}},
		"honey_paths": {Values: []string{"/v1/auth/login", "/.env"}},
		"known_bad":   {CIDRs: []string{"192.0.2.0/25"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ls.compiled()
}

// testCtx is an evaluation context with default derived-field settings.
func testCtx(ls *listSet) *evalCtx {
	return &evalCtx{cfg: &derivedConfig{v4Bits: defaultPrefixV4, v6Bits: defaultPrefixV6, lists: ls}}
}

func TestFastPathMatchesVM(t *testing.T) {
	for _, src := range fastExprs {
		t.Run(src, func(t *testing.T) {
			ls := testLists(t)
			p, err := compilePredicate(src, ls)
			if err != nil {
				t.Fatal(err)
			}
			if p.fast == nil {
				t.Fatalf("%q did not take the fast path", src)
			}
			c := testCtx(ls)
			for _, ev := range sampleEvents() {
				c.reset(ev)
				if f, v := p.fast(c), vmEval(p, c); f != v {
					t.Fatalf("event %s: fast=%v vm=%v", ev.RequestID, f, v)
				}
			}
		})
	}
}

func TestSlowPathStillWorks(t *testing.T) {
	p, err := compilePredicate(`len(user) > 3 && ts.Hour() == 10`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.fast != nil {
		t.Fatal("expected the VM path")
	}
	c := testCtx(nil)
	c.reset(&event.Event{Time: t0, User: "alice"})
	if !p.eval(c) {
		t.Fatal("want true")
	}
	c.reset(&event.Event{Time: t0, User: "bob"})
	if p.eval(c) {
		t.Fatal("want false")
	}
}

// FuzzExprEnv compiles arbitrary expressions over the event environment and
// evaluates them on sample events: no panic, and the fast path agrees with
// the VM whenever it applies.
func FuzzExprEnv(f *testing.F) {
	for _, s := range fastExprs {
		f.Add(s)
	}
	f.Add(`user matches "("`)
	f.Add(`attrs.x.y == 1`)
	f.Add(`1/0 == 1`)
	f.Add(`let x = status; x == 401`)
	evs := sampleEvents()
	ls := testLists(f)
	f.Fuzz(func(t *testing.T, src string) {
		p, err := compilePredicate(src, ls)
		if err != nil {
			return
		}
		c := testCtx(ls)
		for _, ev := range evs {
			c.reset(ev)
			got := p.eval(c)
			if p.fast != nil {
				if want := vmEval(p, c); got != want {
					t.Fatalf("%q on event %s: fast=%v vm=%v", src, ev.RequestID, got, want)
				}
			}
		}
	})
}

// FuzzParseRules feeds arbitrary YAML to the rule parser and runs whatever
// compiles on a few events: no panic.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{validRule, thresholdRule, distinctRule, ratioRule, spikeRule, sequenceRule, "rules: []", "rules:\n  - {}\n"} {
		f.Add(s)
	}
	evs := sampleEvents()
	f.Fuzz(func(t *testing.T, src string) {
		rs, err := ParseRules("fuzz.yaml", []byte(src))
		if err != nil || len(rs) == 0 {
			return
		}
		e, err := New(rs, Options{StateMemory: MinStateMemory, Emit: func(Alert) {}})
		if err != nil {
			return
		}
		defer e.Close()
		for _, ev := range evs {
			e.Process(ev)
		}
		e.Flush()
	})
}

// FuzzStateDecode checks that any bytes decode without panic and that a
// decoded state re-encodes to something that decodes the same.
func FuzzStateDecode(f *testing.F) {
	sk := newSketchCodec()
	s := groupState{first: 7, fine: []bucket{{1, 2, 3}, {5, 1, 0}}, set: dset{list: []setEntry{{1, 10}, {2, 4}}}, ofset: dset{list: []setEntry{{7, 3}}},
		fresh: []setEntry{{9, 5}}, known: []setEntry{{3, -200}},
		series: []series{{sampled: 40, samples: []baseSample{{38, 1.5}, {39, 0}, {40, 2}}}}}
	sk.addValue(&s, 5, 120)
	sk.addValue(&s, 5, 80)
	s.pushSample([]byte("req-1"))
	f.Add(s.encode(nil))
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s1, s2 groupState
		if s1.decode(b, sk) != nil {
			return
		}
		enc := s1.encode(nil)
		if err := s2.decode(enc, sk); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if string(s2.encode(nil)) != string(enc) {
			t.Fatal("round trip changed the state")
		}
	})
}
