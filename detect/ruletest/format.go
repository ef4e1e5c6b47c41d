// Package ruletest runs rule unit tests written in YAML, in the spirit of
// promtool's rule tests: input events (inline blocks with time offsets and
// counts, or a JSON-lines file) and the exact list of alert transitions the
// rules must produce. docs/rules.md describes the format.
package ruletest

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
)

// File is one rule test file.
type File struct {
	// RuleFiles are rule files (relative to the test file) to test; empty
	// means the rules the runner was given (by default the embedded set).
	RuleFiles []string `yaml:"rule_files"`
	// Lists fills in the operator lists the rules declare (honey
	// accounts, address ranges) for this file's tests.
	Lists map[string]detect.ListSpec `yaml:"lists"`
	Tests []Test                     `yaml:"tests"`
}

// Test is one scenario.
type Test struct {
	Name string `yaml:"name"`
	// Start is the time of offset 0 (default 2025-01-01T00:00:00Z).
	Start time.Time `yaml:"start"`
	// Lateness is the engine's allowed lateness (default 5s).
	Lateness  *detect.Duration `yaml:"lateness"`
	Events    []Block          `yaml:"events"`
	InputFile string           `yaml:"input_file"`
	Expect    []Expect         `yaml:"expect"`
}

// Block is Count events spaced by Every, the first at offset At. In string
// fields, {{i}} is replaced by the event's index in the block and {{i%N}} by
// the index modulo N.
type Block struct {
	At    detect.Duration `yaml:"at"`
	Every detect.Duration `yaml:"every"`
	Count int             `yaml:"count"`
	Event EventSpec       `yaml:"event"`
}

// EventSpec is an event's fields, named as in the wire schema; ts comes from
// the block and request_id defaults to a generated one.
type EventSpec struct {
	Service   string            `yaml:"service" json:"service"`
	RequestID string            `yaml:"request_id" json:"request_id"`
	Method    string            `yaml:"method" json:"method"`
	Endpoint  string            `yaml:"endpoint" json:"endpoint"`
	Status    int               `yaml:"status" json:"status"`
	Path      string            `yaml:"path" json:"path"`
	LatencyMS *float64          `yaml:"latency_ms" json:"latency_ms"`
	SourceIP  string            `yaml:"source_ip" json:"source_ip"`
	User      string            `yaml:"user" json:"user"`
	ClientID  string            `yaml:"client_id" json:"client_id"`
	UserAgent string            `yaml:"user_agent" json:"user_agent"`
	Attrs     map[string]string `yaml:"attrs" json:"attrs"`
}

// Expect is one expected transition. By, when set, bounds when it happens:
// starts_at for firing, ends_at for resolved, at or before Start+By.
type Expect struct {
	Rule       string            `yaml:"rule"`
	Labels     map[string]string `yaml:"labels"`
	Transition detect.Transition `yaml:"transition"`
	By         *detect.Duration  `yaml:"by"`
}

var defaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const maxEvents = 5_000_000

var indexRE = regexp.MustCompile(`\{\{i(?:%(\d+))?\}\}`)

func expand(s string, i int) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	return indexRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := indexRE.FindStringSubmatch(m)
		if sub[1] == "" {
			return strconv.Itoa(i)
		}
		n, err := strconv.Atoi(sub[1])
		if err != nil || n == 0 {
			return m
		}
		return strconv.Itoa(i % n)
	})
}

// toEvent builds the i-th event of a block at time ts.
func (s *EventSpec) toEvent(ts time.Time, i int, defaultID string) (*event.Event, error) {
	ev := &event.Event{
		Time: ts, Service: expand(s.Service, i), RequestID: expand(s.RequestID, i),
		Method: expand(s.Method, i), Endpoint: expand(s.Endpoint, i), Status: s.Status,
		Path: expand(s.Path, i), User: expand(s.User, i), ClientID: expand(s.ClientID, i),
		UserAgent: expand(s.UserAgent, i),
	}
	if ev.RequestID == "" {
		ev.RequestID = defaultID
	}
	if s.LatencyMS != nil {
		ev.LatencyMS, ev.HasLatency = *s.LatencyMS, true
	}
	if ip := expand(s.SourceIP, i); ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("source_ip %q: %w", ip, err)
		}
		ev.SourceIP = a
	}
	if len(s.Attrs) > 0 {
		ev.Attrs = make(map[string]string, len(s.Attrs))
		for k, v := range s.Attrs {
			ev.Attrs[k] = expand(v, i)
		}
	}
	if ev.Service == "" || ev.Status < 100 || ev.Status > 599 {
		return nil, fmt.Errorf("event needs a service and a status between 100 and 599")
	}
	return ev, nil
}
