// Package receiver is the contract between Vigil's notifier and the
// integrations that deliver alerts (Slack, webhooks, Alertmanager, log): what a
// notification carries, and how a receiver reports a failure so the notifier
// can decide whether to retry it, when, and whether the endpoint is gone.
//
// Receivers are single-purpose: they send one notification once. Retries,
// rate limits, circuit breaking, flood control and dead letters belong to the
// notifier.
package receiver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/detect"
)

// Kind says what a notification announces.
type Kind string

// Notification kinds. A digest rolls several alerts into one message when a
// receiver is past its flood limit.
const (
	KindFiring   Kind = "firing"
	KindRepeat   Kind = "repeat"
	KindResolved Kind = "resolved"
	KindDigest   Kind = "digest"
)

// Ref identifies a message a receiver created (a Slack channel and message
// timestamp), so a later notification about the same alert can update it or
// reply in its thread.
type Ref struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// IsZero reports whether r refers to no message.
func (r Ref) IsZero() bool { return r.Channel == "" || r.TS == "" }

// Notification is one delivery to one receiver.
type Notification struct {
	// ID is stable across every attempt of this delivery (and across
	// restarts), so receivers can deduplicate on it.
	ID string
	// Receiver is the configured receiver name.
	Receiver string
	// Kind is firing, repeat or resolved for a single alert, or digest.
	Kind Kind
	// Alerts holds one alert, or several for a digest. Each alert's
	// Transition says what this receiver is told about it.
	Alerts []detect.Alert
	// Ref is the message this receiver created when it announced the alert,
	// if any (single-alert notifications only).
	Ref Ref
	// Thread is this receiver's thread about the alert's incident, for a
	// receiver that threads (see Threader) and a single alert with an
	// incident; nil otherwise.
	Thread *Thread
	// Created is when the notification was queued; it does not change
	// between attempts.
	Created time.Time
	// Attempt counts attempts of this delivery, starting at 1.
	Attempt int
}

// Alert returns the notification's first alert, the only one unless Kind is
// KindDigest.
func (n *Notification) Alert() detect.Alert {
	if len(n.Alerts) == 0 {
		return detect.Alert{}
	}
	return n.Alerts[0]
}

// Result is what a receiver reports after a successful send.
type Result struct {
	// Ref is the message that now represents the alert at this receiver,
	// kept in alert state for later updates. Zero when not applicable.
	Ref Ref
	// Thread is the incident's thread as the receiver left it (its top
	// message and what that shows), when the notification had one.
	Thread *Thread
}

// Thread is a receiver's conversation about one incident: a top message
// that announces the incident, under which every alert of the incident is
// posted. The notifier keeps it in alert state, so it outlives restarts.
type Thread struct {
	// ID is the incident's id.
	ID string `json:"id"`
	// Ref is the top message; zero until the first alert of the incident
	// reached the receiver, so this notification opens the thread.
	Ref Ref `json:"ref,omitzero"`
	// Severity and Resolved are what the top message shows: the incident's
	// severity, and whether every alert of the thread has resolved.
	Severity string `json:"severity,omitempty"`
	Resolved bool   `json:"resolved,omitempty"`
	// First is the alert that opened the thread, at its latest transition
	// the receiver was told; the top message shows it.
	First detect.Alert `json:"first"`
	// Rules names the rules whose alerts the thread holds, in the order
	// they joined, and Alerts counts those alerts; both include the
	// notification's alert.
	Rules  []string `json:"rules,omitempty"`
	Alerts int      `json:"alerts"`
	// Firing counts the thread's alerts still firing once this
	// notification is delivered; -1 when there are too many to track.
	Firing int `json:"firing"`
}

// Threader is implemented by receivers that can thread an incident's
// alerts. Threads reports whether this one does (a Slack receiver posting
// through an incoming webhook cannot).
type Threader interface {
	Threads() bool
}

// Receiver sends notifications to one destination. Send makes exactly one
// attempt, bounded by ctx, and returns an error that Classify understands.
type Receiver interface {
	Send(ctx context.Context, n *Notification) (Result, error)
}

// DigestSummary returns the one-line text of a digest: "37 more alerts:
// 30 × brute_force_user, 7 × error_spike". Rule names are returned as they
// are; receivers escape them for their own format.
func DigestSummary(alerts []detect.Alert) string {
	counts := map[string]int{}
	for _, a := range alerts {
		counts[a.Rule]++
	}
	rules := make([]string, 0, len(counts))
	for r := range counts {
		rules = append(rules, r)
	}
	sort.Slice(rules, func(i, j int) bool {
		if counts[rules[i]] != counts[rules[j]] {
			return counts[rules[i]] > counts[rules[j]]
		}
		return rules[i] < rules[j]
	})
	parts := make([]string, 0, len(rules))
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%d × %s", counts[r], r))
	}
	noun := "alerts"
	if len(alerts) == 1 {
		noun = "alert"
	}
	return fmt.Sprintf("%d more %s: %s", len(alerts), noun, strings.Join(parts, ", "))
}

// Headline returns a one-line description of an alert and its transition:
// "FIRING [high] brute_force_user: 57 failed logins for admin". Text is
// returned unescaped.
func Headline(a detect.Alert) string {
	state := strings.ToUpper(string(a.Transition))
	if a.Transition == detect.TransitionRepeat {
		state = "STILL FIRING"
	}
	s := fmt.Sprintf("%s [%s] %s", state, a.Severity, a.Rule)
	if a.Summary != "" {
		s += ": " + a.Summary
	}
	return s
}

// FormatValue writes an alert's Value or Threshold for people, by the
// alert's Unit: a share as a percentage with one decimal ("81.2%", as the
// rules' percent template does), milliseconds with "ms", a count as it is;
// at most two decimals.
func FormatValue(v float64, unit string) string {
	switch unit {
	case detect.UnitShare:
		return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
	case detect.UnitMS:
		return decimal(v) + " ms"
	default:
		return decimal(v)
	}
}

// decimal writes v with at most two decimals and no trailing zeros.
func decimal(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
