// Package jsonlog is the log receiver: it writes one JSON object per
// notification, on one line, to a writer (standard output in the daemon).
// encoding/json escapes control characters, so attacker-controlled text
// cannot break a line or forge another record.
package jsonlog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Config is the log receiver's configuration. It has no options today:
//
//	log: {}
type Config struct{}

// Record is one line of output.
type Record struct {
	Time     time.Time     `json:"time"`
	Receiver string        `json:"receiver"`
	ID       string        `json:"id"`
	Kind     receiver.Kind `json:"kind"`
	Summary  string        `json:"summary"`
	// Details says, for a single alert, what the raw fields of the alert
	// mean for a person: its value in its unit, the condition that held
	// and what its checks measured, its incident, and the rule's
	// references: "81.2% (threshold 50.0% over 2m0s); fast: count 12,
	// share 81.2%; incident 1a2b3c4d5e6f7a8b (critical); ATT&CK T1110.001".
	Details string         `json:"details,omitempty"`
	Alerts  []detect.Alert `json:"alerts"`
}

// Log writes notifications as JSON lines. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// New returns a log receiver writing to w.
func New(w io.Writer, now func() time.Time) *Log { return &Log{w: w, now: now} }

// Send writes one line for n with a single Write call.
func (l *Log) Send(_ context.Context, n *receiver.Notification) (receiver.Result, error) {
	r := Record{Time: l.now().UTC(), Receiver: n.Receiver, ID: n.ID, Kind: n.Kind, Alerts: n.Alerts}
	if n.Kind == receiver.KindDigest {
		r.Summary = receiver.DigestSummary(n.Alerts)
	} else {
		r.Summary, r.Details = receiver.Headline(n.Alert()), details(n.Alert())
	}
	b, err := json.Marshal(r)
	if err != nil {
		return receiver.Result{}, receiver.Permanent(fmt.Errorf("encode log record: %w", err))
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return receiver.Result{}, receiver.Temporary(fmt.Errorf("write log record: %w", err), 0)
	}
	return receiver.Result{}, nil
}

func details(a detect.Alert) string {
	parts := []string{receiver.ValueLine(a)}
	if a.Condition != "" || len(a.Values) > 1 {
		parts = append(parts, receiver.Condition(a))
	}
	if a.IncidentID != "" {
		parts = append(parts, fmt.Sprintf("incident %s (%s)", a.IncidentID, receiver.IncidentSeverity(a)))
	}
	if refs := receiver.References(a); refs != "" {
		parts = append(parts, refs)
	}
	return strings.Join(parts, "; ")
}
