package slack

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/notify/receiver"
)

type call struct {
	method string
	form   url.Values
}

// api is slacktest with recorded chat.postMessage and chat.update; answer
// may replace the reply (return true when it wrote one).
type api struct {
	*slacktest.Server
	mu     sync.Mutex
	calls  []call
	answer func(method string, w http.ResponseWriter) bool
}

func newAPI(t *testing.T, answer func(method string, w http.ResponseWriter) bool) *api {
	a := &api{answer: answer}
	a.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.update"} {
			c.Handle("/"+m, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				form, _ := url.ParseQuery(string(b))
				a.mu.Lock()
				a.calls = append(a.calls, call{m, form})
				n := len(a.calls)
				a.mu.Unlock()
				if a.answer != nil && a.answer(m, w) {
					return
				}
				ts := form.Get("ts")
				if m == "chat.postMessage" {
					ts = fmt.Sprintf("1700000000.%06d", n)
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C1", "ts": ts})
			})
		}
	})
	a.Start()
	t.Cleanup(a.Stop)
	return a
}

func (a *api) seen() []call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]call(nil), a.calls...)
}

func newSlack(t *testing.T, a *api, onResolve string) *Slack {
	t.Helper()
	cfg := Config{Token: secret.New("xoxb-token", "test"), Channel: "#sec", APIURL: a.GetAPIURL(), OnResolve: onResolve}
	if err := cfg.Validate(true); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, receiver.NewHTTP(nil, 0, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func note(kind receiver.Kind, ref receiver.Ref) *receiver.Notification {
	a := detect.Alert{Rule: "brute_force_user", Severity: "high", Transition: detect.Transition(kind), Fingerprint: "fp",
		StartsAt: time.Unix(1700000000, 0), Labels: map[string]string{"user": "admin"}}
	if kind == receiver.KindResolved {
		a.EndsAt = a.StartsAt.Add(5 * time.Minute)
	}
	return &receiver.Notification{ID: "id", Kind: kind, Alerts: []detect.Alert{a}, Ref: ref}
}

func TestLifecycleThroughWebAPI(t *testing.T) {
	ref := receiver.Ref{Channel: "C1", TS: "1700000000.000001"}
	cases := []struct {
		name      string
		onResolve string
		answer    func(string, http.ResponseWriter) bool
		n         *receiver.Notification
		want      []string // method, plus "@thread" for a thread reply
		wantRef   receiver.Ref
	}{
		{"firing posts and returns the message", "", nil, note(receiver.KindFiring, receiver.Ref{}), []string{"chat.postMessage"}, ref},
		{"repeat replies in the thread", "", nil, note(receiver.KindRepeat, ref), []string{"chat.postMessage@thread"}, ref},
		{"resolve updates in place", "", nil, note(receiver.KindResolved, ref), []string{"chat.update"}, ref},
		{"resolve replies when configured", ResolveReply, nil, note(receiver.KindResolved, ref), []string{"chat.postMessage@thread"}, ref},
		{"resolve without the original posts anew", "", nil, note(receiver.KindResolved, receiver.Ref{}), []string{"chat.postMessage"}, ref},
		{"update refused falls back to a reply", "", func(m string, w http.ResponseWriter) bool {
			if m == "chat.update" {
				fmt.Fprint(w, `{"ok":false,"error":"message_not_found"}`)
				return true
			}
			return false
		}, note(receiver.KindResolved, ref), []string{"chat.update", "chat.postMessage@thread"}, ref},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, calls := sendVia(t, tc.answer, tc.onResolve, tc.n)
			got := methods(t, calls, ref)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("calls = %v, want %v", got, tc.want)
			}
			if res.Ref != tc.wantRef {
				t.Errorf("ref = %+v, want %+v", res.Ref, tc.wantRef)
			}
		})
	}
}

// sendVia sends n through a receiver with on_resolve onResolve, to a Slack
// answering as answer says, and returns the result and the calls made.
func sendVia(t *testing.T, answer func(string, http.ResponseWriter) bool, onResolve string, n *receiver.Notification) (receiver.Result, []call) {
	t.Helper()
	a := newAPI(t, answer)
	res, err := newSlack(t, a, onResolve).Send(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return res, a.seen()
}

// methods names the calls made, "@thread" added to a reply, and checks that
// every reply and update is about the message ref and carries the token.
func methods(t *testing.T, calls []call, ref receiver.Ref) []string {
	t.Helper()
	var out []string
	for _, c := range calls {
		m := c.method
		if c.form.Get("thread_ts") != "" {
			m += "@thread"
			if c.form.Get("thread_ts") != ref.TS || c.form.Get("channel") != ref.Channel {
				t.Errorf("thread reply to %s/%s, want %s/%s", c.form.Get("channel"), c.form.Get("thread_ts"), ref.Channel, ref.TS)
			}
		}
		if c.method == "chat.update" && (c.form.Get("ts") != ref.TS || c.form.Get("channel") != ref.Channel) {
			t.Errorf("update of %s/%s, want %v", c.form.Get("channel"), c.form.Get("ts"), ref)
		}
		if c.form.Get("token") != "xoxb-token" {
			t.Errorf("token not sent")
		}
		out = append(out, m)
	}
	return out
}

func TestWebAPIErrors(t *testing.T) {
	cases := []struct {
		name   string
		answer func(string, http.ResponseWriter) bool
		want   receiver.Class
	}{
		{"429 with Retry-After", func(_ string, w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}, receiver.Class{Retryable: true, RetryAfter: 2 * time.Second}},
		{"503 with an HTTP date", func(_ string, w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}, receiver.Class{Retryable: true}},
		{"ratelimited in the body", func(_ string, w http.ResponseWriter) bool {
			fmt.Fprint(w, `{"ok":false,"error":"ratelimited"}`)
			return true
		}, receiver.Class{Retryable: true}},
		{"revoked token disables", func(_ string, w http.ResponseWriter) bool {
			fmt.Fprint(w, `{"ok":false,"error":"token_revoked"}`)
			return true
		}, receiver.Class{Disable: true}},
		{"bad blocks are permanent", func(_ string, w http.ResponseWriter) bool {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_blocks"}`)
			return true
		}, receiver.Class{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newSlack(t, newAPI(t, tc.answer), "").Send(t.Context(), note(receiver.KindFiring, receiver.Ref{}))
			if err == nil {
				t.Fatal("no error")
			}
			got := receiver.Classify(err)
			if tc.name == "503 with an HTTP date" {
				if !got.Retryable || got.RetryAfter < 59*time.Minute {
					t.Errorf("class = %+v, want retryable after about an hour", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("class = %+v, want %+v (err %v)", got, tc.want, err)
			}
		})
	}
}

func TestIncomingWebhook(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	hook := srv.URL + "/services/T0/B0/SECRET-WEBHOOK-PATH"
	cfg := Config{WebhookURL: secret.New(hook, "test")}
	if err := cfg.Validate(true); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, receiver.NewHTTP(nil, 0, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	n := note(receiver.KindResolved, receiver.Ref{Channel: "C1", TS: "1.2"})
	n.Alerts[0].Labels["user"] = "<!channel>"
	if _, err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text        string            `json:"text"`
		Blocks      []json.RawMessage `json:"blocks"`
		UnfurlLinks *bool             `json:"unfurl_links"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.Text, "RESOLVED [high] brute_force_user") || len(msg.Blocks) == 0 || msg.UnfurlLinks == nil || *msg.UnfurlLinks {
		t.Errorf("webhook message = %s", body)
	}
	if strings.Contains(string(body), "<!channel>") || strings.Contains(string(body), `\u003c!channel\u003e`) {
		t.Errorf("mention not escaped: %s", body)
	}

	// A failing webhook never puts its URL in the error.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String() + "/services/T0/B0/SECRET-WEBHOOK-PATH"
	l.Close()
	s2, _ := New(Config{WebhookURL: secret.New(dead, "test")}, receiver.NewHTTP(nil, 0, nil), time.Now)
	_, err = s2.Send(t.Context(), n)
	if err == nil || strings.Contains(err.Error(), "SECRET-WEBHOOK-PATH") {
		t.Errorf("err = %v, want a failure without the URL", err)
	}
	if err := (&Config{WebhookURL: secret.New("ftp://x/SECRET-WEBHOOK-PATH", "t")}).Validate(true); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("validation err = %v, want one without the URL", err)
	}
}
