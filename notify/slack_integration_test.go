package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/slack-go/slack/slacktest"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify/slack"
)

// slackCall is one Web API call the fake Slack saw.
type slackCall struct {
	method string
	at     time.Time
	form   url.Values
}

// fakeSlack is slack-go's slacktest server with chat.postMessage and
// chat.update recorded, answered with unique timestamps, or with what
// reply writes (reply returns false to let the call succeed).
type fakeSlack struct {
	*slacktest.Server
	mu    sync.Mutex
	calls []slackCall
	seq   int
	reply func(method string, n int, w http.ResponseWriter) bool
}

const slackChannelID = "C0VIGIL01"

func newFakeSlack(t *testing.T, reply func(method string, n int, w http.ResponseWriter) bool) *fakeSlack {
	t.Helper()
	f := &fakeSlack{reply: reply}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.handler("chat.postMessage"))
		c.Handle("/chat.update", f.handler("chat.update"))
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *fakeSlack) handler(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		n := len(f.calls)
		f.calls = append(f.calls, slackCall{method: method, at: time.Now(), form: form})
		f.seq++
		ts := fmt.Sprintf("1700000000.%06d", f.seq)
		f.mu.Unlock()
		if f.reply != nil && f.reply(method, n, w) {
			return
		}
		if method == "chat.update" {
			ts = form.Get("ts")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": slackChannelID, "ts": ts})
	}
}

func (f *fakeSlack) seen() []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slackCall(nil), f.calls...)
}

func (f *fakeSlack) callCount() int { return len(f.seen()) }

func slackReceiver(name string, f *fakeSlack) ReceiverConfig {
	return ReceiverConfig{Name: name, Slack: &slack.Config{
		Token: secret.New("xoxb-test-token", "test"), Channel: "#security-alerts", APIURL: f.GetAPIURL(),
	}}
}

// textValues walks decoded Block Kit JSON and returns every "text" string.
func textValues(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "text" {
				out = append(out, s)
			}
			out = append(out, textValues(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, textValues(e)...)
		}
	}
	return out
}

// slackSetup is a nats-server, a fake Slack, and a Notifier whose every
// alert goes to the Slack receiver oncall.
type slackSetup struct {
	srv *server.Server
	nc  *nats.Conn
	fs  *fakeSlack
	cfg Config
	h   *harness
}

func newSlackSetup(t *testing.T) *slackSetup {
	t.Helper()
	s := &slackSetup{srv: testkit.RunNATS(t), fs: newFakeSlack(t, nil)}
	s.cfg = Config{Receivers: []ReceiverConfig{slackReceiver("oncall", s.fs)}, Routes: oneRoute("oncall"), Notify: testSettings()}
	var js jetstream.JetStream
	s.nc, js = testkit.Connect(t, s.srv)
	s.h = start(t, s.cfg, js)
	return s
}

// notify queues al and waits until Slack saw calls calls in all and the
// outbox is empty.
func (s *slackSetup) notify(t *testing.T, al detect.Alert, calls int) {
	t.Helper()
	if err := s.h.n.Notify(t.Context(), al); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, al.Fingerprint+" "+string(al.Transition)+" in Slack",
		all(count("Slack calls", calls, s.fs.callCount), queued(s.h, 0)))
}

func TestHostileTextArrivesInertInSlack(t *testing.T) {
	setup := newSlackSetup(t)
	h, fs := setup.h, setup.fs
	a := testAlert("fp-hostile", detect.TransitionFiring)
	a.Labels = map[string]string{
		"user":       "<!channel> <https://evil.example/login|click to re-authenticate>",
		"path":       "/login?next=<@U0ADMIN>&x=<!subteam^S123>",
		"user_agent": "curl\u202e<!here>\n*bold*",
	}
	a.Summary = "Failed logins for <!everyone> & friends"
	if err := h.n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the post", count("Slack calls", 1, fs.callCount))
	form := fs.seen()[0].form
	var blocks any
	if err := json.Unmarshal([]byte(form.Get("blocks")), &blocks); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	texts := append(textValues(blocks), form.Get("text"))
	joined := strings.Join(texts, "\n")
	for _, s := range texts {
		if strings.ContainsAny(s, "<>") {
			t.Errorf("text reaches Slack with a raw < or >: %q", s)
		}
		if strings.ContainsRune(s, '\u202e') {
			t.Errorf("text keeps a bidi override: %q", s)
		}
	}
	for _, want := range []string{"&lt;!channel&gt;", "&lt;https://evil.example/login|click to re-authenticate&gt;", "&lt;@U0ADMIN&gt;&amp;x=", "&lt;!everyone&gt; &amp; friends"} {
		if !strings.Contains(joined, want) {
			t.Errorf("escaped text %q missing from the message", want)
		}
	}
	if form.Get("unfurl_links") != "false" || form.Get("unfurl_media") != "false" {
		t.Errorf("link unfurling not disabled: unfurl_links=%q unfurl_media=%q", form.Get("unfurl_links"), form.Get("unfurl_media"))
	}
}
