package slack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	slackapi "github.com/slack-go/slack"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// incidentNote is a notification of an alert of incident inc1 whose
// incident severity is sev, in thread th.
func incidentNote(kind receiver.Kind, sev string, th receiver.Thread) *receiver.Notification {
	n := note(kind, receiver.Ref{})
	n.Alerts[0].IncidentID, n.Alerts[0].IncidentSeverity = "inc1", sev
	th.ID = "inc1"
	if th.First.Rule == "" {
		th.First = n.Alerts[0]
	}
	n.Thread = &th
	return n
}

func TestIncidentThread(t *testing.T) {
	top := receiver.Ref{Channel: "C1", TS: "1700000000.000001"}
	open := receiver.Thread{Ref: top, Severity: "high", Rules: []string{"brute_force_user", "brute_force_source_ip"}, Alerts: 2, Firing: 2}
	resolvedLast := open
	resolvedLast.Firing = 0
	gone := func(m string, w http.ResponseWriter) bool {
		if m == "chat.update" {
			fmt.Fprint(w, `{"ok":false,"error":"message_not_found"}`)
			return true
		}
		return false
	}
	cases := []struct {
		name      string
		onResolve string
		answer    func(string, http.ResponseWriter) bool
		n         *receiver.Notification
		want      []string // method, "@thread" for a reply
		header    string   // in the top message posted or updated
		shows     receiver.Thread
	}{
		{"first alert opens the thread", "", nil,
			incidentNote(receiver.KindFiring, "high", receiver.Thread{Rules: []string{"brute_force_user"}, Alerts: 1, Firing: 1}),
			[]string{"chat.postMessage"}, "*INCIDENT*  ·  *HIGH*", receiver.Thread{Ref: top, Severity: "high"}},
		{"a later alert replies in it", "", nil, incidentNote(receiver.KindFiring, "high", open),
			[]string{"chat.postMessage@thread"}, "", receiver.Thread{Ref: top, Severity: "high"}},
		{"an escalation updates the top message, then replies", "", nil, incidentNote(receiver.KindFiring, "critical", open),
			[]string{"chat.update", "chat.postMessage@thread"}, "*INCIDENT*  ·  *CRITICAL*", receiver.Thread{Ref: top, Severity: "critical"}},
		{"a repeat replies", "", nil, incidentNote(receiver.KindRepeat, "high", open),
			[]string{"chat.postMessage@thread"}, "", receiver.Thread{Ref: top, Severity: "high"}},
		{"the last resolve marks the incident resolved", "", nil, incidentNote(receiver.KindResolved, "high", resolvedLast),
			[]string{"chat.update", "chat.postMessage@thread"}, "*INCIDENT RESOLVED*  ·  *HIGH*", receiver.Thread{Ref: top, Severity: "high", Resolved: true}},
		{"with on_resolve reply the top message stays", ResolveReply, nil, incidentNote(receiver.KindResolved, "high", resolvedLast),
			[]string{"chat.postMessage@thread"}, "", receiver.Thread{Ref: top, Severity: "high"}},
		{"a top message that cannot be edited still gets the reply", "", gone, incidentNote(receiver.KindFiring, "critical", open),
			[]string{"chat.update", "chat.postMessage@thread"}, "", receiver.Thread{Ref: top, Severity: "critical"}},
		{"a deleted top message opens a new thread", "", threadGone(), incidentNote(receiver.KindFiring, "high", open),
			[]string{"chat.postMessage@thread", "chat.postMessage"}, "*INCIDENT*  ·  *HIGH*", receiver.Thread{Ref: receiver.Ref{Channel: "C1", TS: "1700000000.000002"}, Severity: "high"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, calls := sendVia(t, tc.answer, tc.onResolve, tc.n)
			got := methods(t, calls, top)
			var header string // of the last top message posted or updated
			for i, c := range calls {
				if got[i] == "chat.postMessage" || got[i] == "chat.update" {
					header = firstBlockText(t, c.form.Get("blocks"))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("calls = %v, want %v", got, tc.want)
			}
			if tc.header != "" && !strings.Contains(header, tc.header) {
				t.Errorf("top message header %q, want it to say %q", header, tc.header)
			}
			if res.Thread == nil || res.Thread.Ref != tc.shows.Ref || res.Thread.Severity != tc.shows.Severity || res.Thread.Resolved != tc.shows.Resolved {
				t.Errorf("thread = %+v, want it to show %+v", res.Thread, tc.shows)
			}
		})
	}
}

// threadGone answers the first call as Slack does for a reply to a deleted
// message.
func threadGone() func(string, http.ResponseWriter) bool {
	n := 0
	return func(_ string, w http.ResponseWriter) bool {
		if n++; n == 1 {
			fmt.Fprint(w, `{"ok":false,"error":"thread_not_found"}`)
			return true
		}
		return false
	}
}

func TestAlertWithoutThreadKeepsItsOwnMessage(t *testing.T) {
	// A resolve of an alert announced before its incident had a thread
	// here (state from a Vigil without incidents) updates its own message.
	a := newAPI(t, nil)
	own := receiver.Ref{Channel: "C1", TS: "1600000000.000001"}
	n := incidentNote(receiver.KindResolved, "high", receiver.Thread{Alerts: 1})
	n.Ref = own
	if _, err := newSlack(t, a, "").Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if c := a.seen(); len(c) != 1 || c[0].method != "chat.update" || c[0].form.Get("ts") != own.TS {
		t.Errorf("calls = %+v, want the alert's own message updated", c)
	}
}

// firstBlockText returns the text of the first section of Block Kit JSON.
func firstBlockText(t *testing.T, blocks string) string {
	t.Helper()
	var bs []struct {
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil || len(bs) == 0 {
		t.Fatalf("blocks %q: %v", blocks, err)
	}
	return bs[0].Text.Text
}

func TestIncidentFactsAndReferences(t *testing.T) {
	a := detect.Alert{Rule: "brute_force_source_ip", Severity: "high", Transition: detect.TransitionFiring,
		Value: 0.9, Threshold: 0.8, Unit: detect.UnitShare, Condition: "fast<!here>", Values: map[string]float64{"count": 12, "share": 0.9},
		IncidentID: "1a2b3c4d5e6f7a8b", IncidentSeverity: "critical",
		Attack: []string{"T1110.001", "<https://evil|T1>"}, AppSensor: []string{"AE3"}}
	texts := strings.Join(sectionTexts(renderAlert(a, nil, a.StartsAt).blocks), "\n")
	for _, want := range []string{
		"*Condition*\nfast&lt;!here&gt;: count 12, share 90.0%",
		"*Incident*\n`1a2b3c4d5e6f7a8b`  ·  CRITICAL",
		"*References*\nATT&amp;CK <https://attack.mitre.org/techniques/T1110/001/|T1110.001>, &lt;https://evil|T1&gt;  ·  AppSensor AE3",
	} {
		if !strings.Contains(texts, want) {
			t.Errorf("message lacks %q:\n%s", want, texts)
		}
	}
}

// sectionTexts returns the text and field texts of every section block.
func sectionTexts(blocks []slackapi.Block) []string {
	var out []string
	for _, b := range blocks {
		sb, ok := b.(*slackapi.SectionBlock)
		if !ok {
			continue
		}
		if sb.Text != nil {
			out = append(out, sb.Text.Text)
		}
		for _, f := range sb.Fields {
			out = append(out, f.Text)
		}
	}
	return out
}
