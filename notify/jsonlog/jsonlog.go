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
	Time     time.Time      `json:"time"`
	Receiver string         `json:"receiver"`
	ID       string         `json:"id"`
	Kind     receiver.Kind  `json:"kind"`
	Summary  string         `json:"summary"`
	Alerts   []detect.Alert `json:"alerts"`
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
		r.Summary = receiver.Headline(n.Alert())
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
