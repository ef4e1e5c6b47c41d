package slack

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Threads reports whether the receiver threads an incident's alerts: through
// the Web API it does; an incoming webhook cannot reply in a thread.
func (s *Slack) Threads() bool { return s.api != nil }

// sendThreaded delivers a single alert of an incident. The incident's first
// alert opens the thread with a top message announcing the incident; every
// later notification of the incident (another alert firing, a repeat, a
// resolve) is a reply in that thread, after the top message is brought up
// to date when the incident's severity rose or when it resolved (or came
// back). The top message is edited before the reply is posted, so a retry
// after a failed reply edits it again, which changes nothing, rather than
// replying twice.
func (s *Slack) sendThreaded(ctx context.Context, n *receiver.Notification, msg message) (receiver.Result, error) {
	th := *n.Thread
	a := n.Alert()
	if th.Ref.IsZero() {
		return s.openThread(ctx, th, a)
	}
	want := th
	if sev := receiver.IncidentSeverity(a); receiver.SeverityRank(sev) > receiver.SeverityRank(th.Severity) {
		want.Severity = sev
	}
	want.Resolved = th.Firing == 0 && s.onResolve == ResolveUpdate
	if want.Severity != th.Severity || want.Resolved != th.Resolved {
		top := renderIncident(want, s.links, s.now())
		_, _, _, err := s.api.UpdateMessageContext(ctx, th.Ref.Channel, th.Ref.TS,
			slackapi.MsgOptionText(top.text, false), slackapi.MsgOptionBlocks(top.blocks...))
		// A top message that can no longer be edited stays as it is; the
		// thread still takes the reply.
		if err != nil && !messageGone(err) {
			return receiver.Result{}, classify("chat.update", err)
		}
	}
	if _, err := s.post(ctx, th.Ref.Channel, th.Ref.TS, msg); err != nil {
		if !messageGone(err) {
			return receiver.Result{}, err
		}
		// Someone deleted the top message: the incident starts a new
		// thread with this alert.
		return s.openThread(ctx, want, a)
	}
	return receiver.Result{Ref: th.Ref, Thread: &want}, nil
}

// openThread posts the top message of incident thread th, for alert a: the
// incident's first alert here, or the one that found the thread gone.
func (s *Slack) openThread(ctx context.Context, th receiver.Thread, a detect.Alert) (receiver.Result, error) {
	th.Ref, th.First = receiver.Ref{}, a
	if sev := receiver.IncidentSeverity(a); receiver.SeverityRank(sev) > receiver.SeverityRank(th.Severity) {
		th.Severity = sev
	}
	th.Resolved = th.Firing == 0 && s.onResolve == ResolveUpdate
	ref, err := s.post(ctx, s.channel, "", renderIncident(th, s.links, s.now()))
	if err != nil {
		return receiver.Result{}, err
	}
	th.Ref = ref
	return receiver.Result{Ref: ref, Thread: &th}, nil
}

// renderIncident renders an incident's top message: a header saying it is
// an incident, its severity and what it holds so far, then the alert that
// opened it.
func renderIncident(th receiver.Thread, links []link, now time.Time) message {
	head := section(incidentHeader(th))
	body := alertWithin(th.First, links, now, maxBlocks-2)
	blocks := append([]slackapi.Block{head, slackapi.NewDividerBlock()}, body.blocks...)
	word := "INCIDENT"
	if th.Resolved {
		word = "INCIDENT RESOLVED"
	}
	text := fmt.Sprintf("%s [%s] %s", word, th.Severity, receiver.Headline(th.First))
	return message{text: escape(text, maxFallback, false), blocks: blocks}
}

// incidentHeader is the top message's first section:
//
//	🚨 INCIDENT · CRITICAL · `1a2b3c4d5e6f7a8b`
//	3 alerts from 3 rules: brute_force_source_ip, brute_force_user, account_takeover · 2 firing
func incidentHeader(th receiver.Thread) string {
	emoji, word := ":rotating_light:", "INCIDENT"
	if th.Resolved {
		emoji, word = ":white_check_mark:", "INCIDENT RESOLVED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s*  ·  *%s*  ·  `%s`\n", emoji, word,
		escape(strings.ToUpper(th.Severity), 40, false), escape(th.ID, 100, false))
	noun := "alerts"
	if th.Alerts == 1 {
		noun = "alert"
	}
	rules := escape(strings.Join(th.Rules, ", "), 1000, false)
	fmt.Fprintf(&b, "%d %s from %s: %s", th.Alerts, noun, plural(len(th.Rules), "rule"), rules)
	if !th.Resolved && th.Firing > 0 {
		fmt.Fprintf(&b, "  ·  %d firing", th.Firing)
	}
	if th.Alerts == 1 && th.Ref.IsZero() {
		b.WriteString("\nLater alerts of this incident follow in the thread.")
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// attackTechnique is a MITRE ATT&CK technique id, with its sub-technique.
var attackTechnique = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)

// references writes the rule's ATT&CK techniques, each a link to its page
// when it is a well-formed id, and its AppSensor detection points.
func references(a detect.Alert) string {
	var parts []string
	if len(a.Attack) > 0 {
		ids := make([]string, len(a.Attack))
		for i, id := range a.Attack {
			ids[i] = escape(id, 40, false)
			if attackTechnique.MatchString(id) {
				ids[i] = "<https://attack.mitre.org/techniques/" + strings.ReplaceAll(id, ".", "/") + "/|" + id + ">"
			}
		}
		parts = append(parts, "ATT&amp;CK "+strings.Join(ids, ", "))
	}
	if len(a.AppSensor) > 0 {
		parts = append(parts, "AppSensor "+escape(strings.Join(a.AppSensor, ", "), 200, false))
	}
	return strings.Join(parts, "  ·  ")
}
