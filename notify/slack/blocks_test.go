package slack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

func TestEscape(t *testing.T) {
	cases := []struct {
		name, in  string
		limit     int
		keepLines bool
		want      string
	}{
		{"plain", "admin", 100, false, "admin"},
		{"mention", "<!channel>", 100, false, "&lt;!channel&gt;"},
		{"disguised link", "<https://evil|click>", 100, false, "&lt;https://evil|click&gt;"},
		{"ampersand first", "&lt;", 100, false, "&amp;lt;"},
		{"newline flattened", "a\nb", 100, false, "a b"},
		{"newline kept", "a\nb", 100, true, "a\nb"},
		{"bidi override dropped", "abc\u202edef", 100, false, "abcdef"},
		{"control char", "a\x00b", 100, false, "a b"},
		{"cut with ellipsis", "abcdef", 4, false, "abc…"},
		{"exact fit", "abcd", 4, false, "abcd"},
		{"entity not split", "ab<cd", 5, false, "ab…"},
		{"multibyte counted as characters", "ääää", 3, false, "ää…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := escape(tc.in, tc.limit, tc.keepLines)
			if got != tc.want {
				t.Errorf("escape(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > tc.limit {
				t.Errorf("%d characters, limit %d", n, tc.limit)
			}
		})
	}
}

// checkLimits fails when blocks break Slack's limits.
func checkLimits(t *testing.T, blocks []slackapi.Block) {
	t.Helper()
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks, Slack accepts %d", len(blocks), maxBlocks)
	}
	for i, b := range blocks {
		s, ok := b.(*slackapi.SectionBlock)
		if !ok {
			continue
		}
		if s.Text != nil && utf8.RuneCountInString(s.Text.Text) > maxSectionText {
			t.Errorf("block %d: section text of %d characters", i, utf8.RuneCountInString(s.Text.Text))
		}
		if len(s.Fields) > maxFields {
			t.Errorf("block %d: %d fields", i, len(s.Fields))
		}
		for _, f := range s.Fields {
			if utf8.RuneCountInString(f.Text) > maxFieldText {
				t.Errorf("block %d: field of %d characters", i, utf8.RuneCountInString(f.Text))
			}
		}
	}
}

func TestRenderAlertStaysWithinLimits(t *testing.T) {
	a := detect.Alert{
		Rule: "brute_force_user", Severity: "critical", Transition: detect.TransitionFiring,
		Summary: strings.Repeat("<!here> ", 1000), Description: strings.Repeat("x", 10000),
		Labels: map[string]string{}, Fingerprint: "fp", StartsAt: time.Unix(0, 0),
	}
	for i := range 600 {
		a.Labels[fmt.Sprintf("label_%03d", i)] = strings.Repeat("<v>", 1000)
	}
	m := renderAlert(a, nil, time.Unix(60, 0))
	checkLimits(t, m.blocks)
	b, _ := json.Marshal(m.blocks)
	if !strings.Contains(string(b), "more fields not shown") {
		t.Errorf("hidden labels are not mentioned")
	}
	// An incident's top message holds the alert under its header.
	rules := make([]string, 40)
	for i := range rules {
		rules[i] = strings.Repeat("<r>", 30)
	}
	th := receiver.Thread{ID: "inc<1>", Severity: "critical", First: a, Rules: rules, Alerts: 40, Firing: 3}
	checkLimits(t, renderIncident(th, nil, time.Unix(60, 0)).blocks)
}

func TestRenderAlertShowsValuesInTheirUnit(t *testing.T) {
	cases := []struct {
		name string
		a    detect.Alert
		want string
	}{
		{"share", detect.Alert{Value: 0.811765, Threshold: 0.5, Unit: detect.UnitShare, Window: detect.Duration(2 * time.Minute)},
			"*Value*\n81.2% (threshold 50.0% over 2m0s)"},
		{"milliseconds", detect.Alert{Value: 1234.5678, Threshold: 500, Unit: detect.UnitMS, Window: detect.Duration(time.Minute)},
			"*Value*\n1234.57 ms (threshold 500 ms over 1m0s)"},
		{"count", detect.Alert{Value: 57, Threshold: 50, Window: detect.Duration(5 * time.Minute)},
			"*Value*\n57 (threshold 50 over 5m0s)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.Rule, tc.a.Severity, tc.a.Transition = "service_outage", "critical", detect.TransitionFiring
			m := renderAlert(tc.a, nil, time.Unix(60, 0))
			var fields []string
			for _, b := range m.blocks {
				if s, ok := b.(*slackapi.SectionBlock); ok {
					for _, f := range s.Fields {
						fields = append(fields, f.Text)
					}
				}
			}
			if !slices.Contains(fields, tc.want) {
				t.Errorf("fields %q, want %q among them", fields, tc.want)
			}
		})
	}
}

func TestRenderDigestStaysWithinLimits(t *testing.T) {
	for _, n := range []int{2, 40, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var alerts []detect.Alert
			for i := range n {
				alerts = append(alerts, detect.Alert{Rule: "r", Severity: "high", Transition: detect.TransitionFiring,
					Summary: strings.Repeat("s", 400), Labels: map[string]string{"user": fmt.Sprintf("u%d", i)}})
			}
			m := renderDigest(alerts)
			checkLimits(t, m.blocks)
			if !strings.HasPrefix(m.text, fmt.Sprintf("%d more alerts: %d × r", n, n)) {
				t.Errorf("text = %q", m.text)
			}
			b, _ := json.Marshal(m.blocks)
			shown := strings.Count(string(b), "• ")
			hidden := strings.Contains(string(b), "more not shown")
			if shown != n && !hidden {
				t.Errorf("%d of %d alerts shown and the rest not mentioned", shown, n)
			}
		})
	}
}

func TestLinkButtons(t *testing.T) {
	links, err := compileLinks([]Link{
		{Text: "Grafana", URL: "https://grafana.example.com/d/vigil?var-rule={{.Rule}}&var-user={{.Labels.user}}&from={{.StartsAtMillis}}&to={{.EndsAtMillis}}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := compileLinks([]Link{{Text: "Any", URL: "{{.Labels.path}}"}}); err == nil {
		t.Errorf("a template whose URL comes from a label was accepted")
	}
	a := detect.Alert{Rule: "brute_force_user", Labels: map[string]string{"user": "a&b=<c>", "path": "https://evil.example"},
		StartsAt: time.UnixMilli(1000), Transition: detect.TransitionFiring}
	btns := buttons(a, links, time.UnixMilli(5000))
	if len(btns) != 1 {
		t.Fatalf("%d buttons, want 1", len(btns))
	}
	want := "https://grafana.example.com/d/vigil?var-rule=brute_force_user&var-user=a%26b%3D%3Cc%3E&from=1000&to=5000"
	if got := btns[0].(*slackapi.ButtonBlockElement).URL; got != want {
		t.Errorf("url = %s, want %s", got, want)
	}
}
