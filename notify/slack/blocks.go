package slack

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Slack's Block Kit limits (https://api.slack.com/reference/block-kit).
const (
	maxSectionText = 3000
	maxFieldText   = 2000
	maxFields      = 10
	maxBlocks      = 50
	maxFallback    = 1000
	maxDigestLine  = 300
	maxLabelName   = 100
	maxLabelValue  = 500
)

// message is a rendered Slack message: fallback text (shown in
// notifications) and blocks. Both are already escaped.
type message struct {
	text   string
	blocks []slackapi.Block
}

// escape makes s inert in Slack mrkdwn: &, < and > become entities (so
// "<!channel>" or "<https://evil|click>" cannot mention or disguise a link),
// bidirectional-override characters are dropped, and other control
// characters become spaces (newlines too unless keepNewlines). The result is
// at most limit characters, ending in "…" when cut.
func escape(s string, limit int, keepNewlines bool) string {
	var b strings.Builder
	n := 0
	for i, r := range s {
		piece := escapeRune(r, keepNewlines)
		pn := utf8.RuneCountInString(piece)
		if n+pn > limit || (n+pn == limit && i+utf8.RuneLen(r) < len(s)) {
			b.WriteString("…")
			return b.String()
		}
		b.WriteString(piece)
		n += pn
	}
	return b.String()
}

func escapeRune(r rune, keepNewlines bool) string {
	switch {
	case r == '&':
		return "&amp;"
	case r == '<':
		return "&lt;"
	case r == '>':
		return "&gt;"
	case r == '\n' && keepNewlines:
		return "\n"
	case isBidiControl(r):
		return ""
	case unicode.IsControl(r):
		return " "
	}
	return string(r)
}

func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// mrkdwn returns a verbatim mrkdwn text object: Slack does not auto-link
// URLs, channels or user names inside it.
func mrkdwn(text string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, text, false, true)
}

func section(text string) slackapi.Block { return slackapi.NewSectionBlock(mrkdwn(text), nil, nil) }

func stateWord(t detect.Transition) (emoji, word string) {
	switch t {
	case detect.TransitionResolved:
		return ":white_check_mark:", "RESOLVED"
	case detect.TransitionRepeat:
		return ":repeat:", "STILL FIRING"
	default:
		return ":rotating_light:", "FIRING"
	}
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// renderAlert renders one alert: headline, facts and labels as fields,
// description, fingerprint and sample requests, link buttons.
func renderAlert(a detect.Alert, links []link, now time.Time) message {
	return alertWithin(a, links, now, maxBlocks)
}

// alertWithin is renderAlert in at most budget blocks.
func alertWithin(a detect.Alert, links []link, now time.Time, budget int) message {
	emoji, word := stateWord(a.Transition)
	head := fmt.Sprintf("%s *%s*  ·  *%s*  ·  *%s*", emoji, word,
		escape(strings.ToUpper(a.Severity), 40, false), escape(a.Rule, 200, false))
	if a.Summary != "" {
		head += "\n" + escape(a.Summary, maxSectionText-utf8.RuneCountInString(head)-1, true)
	}
	blocks := []slackapi.Block{section(head)}
	// Keep room for description, context and actions.
	blocks = append(blocks, fieldSections(facts(a, now), budget-len(blocks)-3)...)
	if a.Description != "" {
		blocks = append(blocks, section(escape(a.Description, maxSectionText, true)))
	}
	blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(contextLine(a))))
	if btns := buttons(a, links, now); len(btns) > 0 {
		blocks = append(blocks, slackapi.NewActionBlock("", btns...))
	}
	return message{text: escape(receiver.Headline(a), maxFallback, false), blocks: blocks}
}

// facts lists the alert's fields: value, times, category, then labels sorted
// by name.
func facts(a detect.Alert, now time.Time) []*slackapi.TextBlockObject {
	field := func(name, value string) *slackapi.TextBlockObject {
		return mrkdwn("*" + name + "*\n" + value)
	}
	fs := []*slackapi.TextBlockObject{field("Value", receiver.ValueLine(a))}
	// What each check measured, when that says more than the value does.
	if a.Condition != "" || len(a.Values) > 1 {
		fs = append(fs, field("Condition", escape(receiver.Condition(a), maxFieldText/2, false)))
	}
	fs = append(fs, field("Started", formatTime(a.StartsAt)))
	if a.Transition == detect.TransitionResolved {
		end := a.EndsAt
		if end.IsZero() {
			end = now
		}
		fs = append(fs, field("Resolved", fmt.Sprintf("%s (after %s)", formatTime(end), end.Sub(a.StartsAt).Round(time.Second))))
	}
	if a.Category != "" {
		fs = append(fs, field("Category", escape(a.Category, 200, false)))
	}
	if a.IncidentID != "" {
		fs = append(fs, field("Incident", "`"+escape(a.IncidentID, 100, false)+"`  ·  "+
			escape(strings.ToUpper(receiver.IncidentSeverity(a)), 40, false)))
	}
	if refs := references(a); refs != "" {
		fs = append(fs, field("References", refs))
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		fs = append(fs, field(escape(k, maxLabelName, false), escape(a.Labels[k], maxLabelValue, false)))
	}
	return fs
}

// fieldSections packs fields ten to a section, using at most maxSections
// blocks; what does not fit is summarised in a last field.
func fieldSections(fs []*slackapi.TextBlockObject, maxSections int) []slackapi.Block {
	if capacity := maxSections * maxFields; len(fs) > capacity {
		hidden := len(fs) - capacity + 1
		fs = append(fs[:capacity-1], mrkdwn(fmt.Sprintf("*…*\n%d more fields not shown", hidden)))
	}
	var out []slackapi.Block
	for chunk := range slices.Chunk(fs, maxFields) {
		out = append(out, slackapi.NewSectionBlock(nil, chunk, nil))
	}
	return out
}

func contextLine(a detect.Alert) string {
	s := "Fingerprint " + escape(a.Fingerprint, 200, false)
	if len(a.Sample) > 0 {
		s += "  ·  sample requests: " + escape(strings.Join(a.Sample, ", "), 1000, false)
	}
	return s
}

func buttons(a detect.Alert, links []link, now time.Time) []slackapi.BlockElement {
	var out []slackapi.BlockElement
	for i, l := range links {
		u, err := l.render(a, now)
		if err != nil {
			continue
		}
		b := slackapi.NewButtonBlockElement("link_"+strconv.Itoa(i), "", slackapi.NewTextBlockObject(slackapi.PlainTextType, l.text, false, false))
		b.URL = u
		out = append(out, b)
	}
	return out
}

// renderDigest renders a flood-control digest: the "N more alerts: ..." line,
// then one line per alert packed into sections, within Slack's block limit.
func renderDigest(alerts []detect.Alert) message {
	summary := receiver.DigestSummary(alerts)
	blocks := []slackapi.Block{section(":warning: *" + escape(summary, maxSectionText-20, false) + "*")}
	var cur strings.Builder
	shown := 0
	flush := func() {
		if cur.Len() > 0 {
			blocks = append(blocks, section(cur.String()))
			cur.Reset()
		}
	}
	for _, a := range alerts {
		line := digestLine(a)
		if cur.Len() > 0 && utf8.RuneCountInString(cur.String())+utf8.RuneCountInString(line)+1 > maxSectionText {
			flush()
		}
		// One block stays free for the "and N more" line.
		if cur.Len() == 0 && len(blocks) >= maxBlocks-1 {
			break
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
		shown++
	}
	flush()
	if hidden := len(alerts) - shown; hidden > 0 {
		blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(fmt.Sprintf("…and %d more not shown", hidden))))
	}
	return message{text: escape(summary, maxFallback, false), blocks: blocks}
}

func digestLine(a detect.Alert) string {
	emoji, word := stateWord(a.Transition)
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		labels = append(labels, k+"="+a.Labels[k])
	}
	text := fmt.Sprintf("[%s] %s", a.Severity, a.Rule)
	if a.Summary != "" {
		text += " — " + a.Summary
	}
	if len(labels) > 0 {
		text += " (" + strings.Join(labels, ", ") + ")"
	}
	return fmt.Sprintf("• %s *%s* %s", emoji, word, escape(text, maxDigestLine, false))
}
