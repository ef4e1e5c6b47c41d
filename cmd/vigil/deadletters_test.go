package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testfiles"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// deadLetterServer runs NATS with Vigil's real ingest consumer and
// publishes rejected events to it, waiting until the consumer stored their
// dead letters. It returns the server and the raw message that carried the
// terminal escape sequence.
func deadLetterServer(t *testing.T) (*server.Server, string) {
	t.Helper()
	ns, js := ingestServer(t)
	now := time.Now().UTC().Format(time.RFC3339)
	valid := func(service string) string {
		return `{"ts":"` + now + `","service":"` + service + `","request_id":"r1","method":"GET","endpoint":"/","status":200}`
	}
	escape := "\x1b[2J\x1b[31mgotcha\x07"
	msgs := []string{
		"not json",
		valid("billing"), // service_mismatch
		valid("api") + "\n" + escape + "\n" + valid("other"), // malformed_json, service_mismatch
		`{"ts":"` + now + `","service":"api"}`,               // missing_field
	}
	for i, data := range msgs {
		publishEvents(t, js, fmt.Sprint("m", i), data)
	}
	testkit.WaitFor(t, 10*time.Second, "5 dead letters", testkit.StreamHolds(js, ingest.DeadLetterStream, 5))
	return ns, escape
}

// ingestServer runs NATS with Vigil's real ingest consumer.
func ingestServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	ns := testkit.RunNATS(t)
	nc, js := testkit.Connect(t, ns)
	c, err := ingest.New(ingest.DefaultConfig(), nc, ingest.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ingest Run = %v", err)
		}
	})
	return ns, js
}

// publishEvents publishes data as one message of service api.
func publishEvents(t *testing.T, js jetstream.JetStream, id, data string) {
	t.Helper()
	msg := nats.NewMsg("vigil.events.api")
	msg.Data = []byte(data)
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// dlCase is one vigil deadletters command line and what it must print.
type dlCase struct {
	name   string
	args   []string
	code   int
	stdout []string // each must appear, in this order
	absent []string
}

func runDLCases(t *testing.T, cases []dlCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runDL(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			rest := out
			for _, want := range tc.stdout {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order) in:\n%s", want, out)
				}
				rest = rest[i+len(want):]
			}
			for _, bad := range tc.absent {
				if strings.Contains(out, bad) {
					t.Fatalf("stdout has %q:\n%s", bad, out)
				}
			}
		})
	}
}

func runDL(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runDeadletters(context.Background(), streams{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestDeadletters(t *testing.T) {
	ns, escape := deadLetterServer(t)
	url := ns.ClientURL()
	cases := []dlCase{
		{"list", []string{"list", "--nats-url", url}, 0, []string{
			"SEQ", "REASON", "SUBJECT", "EVENTS SEQ", "DETAIL\n",
			"1 ", "malformed_json", "vigil.events.api", "1 ",
			"2 ", "service_mismatch", "vigil.events.api", "2 ",
			"3 ", "malformed_json", "vigil.events.api", "3 ", "line 2",
			"4 ", "service_mismatch", "vigil.events.api", "3 ", "line 3",
			"5 ", "missing_field", "vigil.events.api", "4 ",
		}, nil},
		{"list the latest two", []string{"list", "--nats-url", url, "--last", "2"}, 0, []string{"\n4 ", "\n5 "}, []string{"\n1 ", "\n2 ", "\n3 "}},
		{"list one reason", []string{"list", "--nats-url", url, "--reason", "service_mismatch"}, 0, []string{"\n2 ", "\n4 "}, []string{"\n1 ", "\n3 ", "\n5 "}},
		{"list since", []string{"list", "--nats-url", url, "--since", "1h", "--last", "0"}, 0, []string{"\n1 ", "\n5 "}, nil},
		{"count", []string{"count", "--nats-url", url}, 0, []string{
			"REASON               COUNT\n", "malformed_json           2\n", "service_mismatch         2\n", "missing_field            1\n", "total                    5\n"}, nil},
		{"show escapes the terminal's control characters", []string{"show", "--nats-url", url, "3"}, 0, []string{
			"Dead letter 3 in vigil.deadletter.events, stored ",
			"Vigil-Reject-Code: malformed_json", "Vigil-Stream-Sequence: 3", "Vigil-Subject: vigil.events.api",
			"Payload (" + fmt.Sprint(len(escape)) + ` bytes):` + "\n" + `\x1b[2J\x1b[31mgotcha\x07` + "\n",
		}, []string{"\x1b", "\x07", "Original message"}},
		{"show the original", []string{"show", "--nats-url", url, "3", "--original"}, 0, []string{
			"Dead letter 3", "Original message 3 in vigil.events.api", "Nats-Msg-Id: m2", `\x1b[2J`, `"service":"other"`,
		}, []string{"\x1b"}},
		{"show a sequence that is not there", []string{"show", "--nats-url", url, "99"}, 1, nil, nil},
		{"show without a sequence", []string{"show", "--nats-url", url}, 2, nil, nil},
		{"unknown subcommand", []string{"purge"}, 2, nil, nil},
	}
	runDLCases(t, cases)
	t.Run("json", func(t *testing.T) {
		code, out, errs := runDL(t, "list", "--nats-url", url, "--json", "--reason", "missing_field")
		var dl deadLetter
		if code != 0 || json.Unmarshal([]byte(out), &dl) != nil || dl.Seq != 5 || dl.Code != "missing_field" || dl.EventSeq != "4" || dl.Subject != "vigil.events.api" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("connect with the daemon's config", func(t *testing.T) {
		cfg := testfiles.Write(t, t.TempDir(), "vigil.yaml", "nats:\n  url: "+url+"\nreceivers:\n  - name: s\n    slack: {token: '${VIGIL_TEST_UNSET_TOKEN}', channel: '#x'}\nroutes:\n  - receivers: [s]\n")
		code, out, errs := runDL(t, "count", "--config", cfg)
		if code != 0 || !strings.Contains(out, "total                    5") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
}

// TestDeadlettersCountsOmittedLines: of a message with more rejected lines
// than ingest stores, count adds the lines that the closing record says were
// not stored, under omitted, instead of counting that record as one rejected
// event, so the total is every rejected line; list --json shows the number.
func TestDeadlettersCountsOmittedLines(t *testing.T) {
	ns, js := ingestServer(t)
	const bad = ingest.MaxDeadLetters + 7
	publishEvents(t, js, "garbage", strings.Repeat("x\n", bad-1)+"x")
	publishEvents(t, js, "one", "not json")
	testkit.WaitFor(t, 10*time.Second, "the dead letters", testkit.StreamHolds(js, ingest.DeadLetterStream, ingest.MaxDeadLetters+2))
	url := ns.ClientURL()

	code, out, errs := runDL(t, "count", "--nats-url", url)
	want := fmt.Sprintf("REASON             COUNT\nmalformed_json       %d\nomitted                7\ntotal                %d\n\nomitted: rejected lines past the first %d of a message (in 1 message)",
		ingest.MaxDeadLetters+1, bad+1, ingest.MaxDeadLetters)
	if code != 0 || !strings.HasPrefix(out, want) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s\nwant it to start:\n%s", code, out, errs, want)
	}
	code, out, errs = runDL(t, "list", "--nats-url", url, "--reason", "omitted", "--json")
	var dl deadLetter
	if code != 0 || json.Unmarshal([]byte(out), &dl) != nil || dl.Omitted != 7 || dl.EventSeq != "1" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the record with omitted_lines 7 and events_seq 1", code, out, errs)
	}
}

// TestDeadlettersNotifyStream: with --stream notify, list, count and show
// read the notifications that finally failed, which a real notifier stored
// after a receiver refused one (400), by receiver.
func TestDeadlettersNotifyStream(t *testing.T) {
	ns := testkit.RunNATS(t)
	_, js := testkit.Connect(t, ns)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such channel", http.StatusBadRequest)
	}))
	defer refuse.Close()
	cfg := notify.DefaultConfig()
	cfg.Receivers = []notify.ReceiverConfig{{Name: "siem", Webhook: &webhook.Config{URL: refuse.URL}}}
	cfg.Routes = []notify.RouteConfig{{Receivers: []string{"siem"}}}
	if err := cfg.Validate(false); err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(t.Context(), cfg, js, notify.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("notify Run = %v", err)
		}
	}()
	alert := detect.Alert{Rule: "brute_force_user", Severity: "high", Category: "brute_force", Transition: detect.TransitionFiring,
		State: detect.StateFiring, Fingerprint: "f1", StartsAt: time.Now()}
	if err := n.Notify(t.Context(), alert); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the failed notification stored", testkit.StreamHolds(js, notify.DeadLetterStream, 1))
	url := ns.ClientURL()

	cases := []dlCase{
		{"list", []string{"list", "--stream", "notify", "--nats-url", url}, 0,
			[]string{"SEQ", "RECEIVER", "ATTEMPTS", "REASON\n", "1 ", "siem", "1 ", "400"}, nil},
		{"list one receiver", []string{"list", "--stream", "notify", "--receiver", "siem", "--nats-url", url}, 0, []string{"\n1 ", "siem"}, nil},
		{"list another receiver", []string{"list", "--stream", "notify", "--receiver", "pager", "--nats-url", url}, 0, []string{"no dead letters"}, []string{"siem"}},
		{"count by receiver", []string{"count", "--stream", "notify", "--nats-url", url}, 0,
			[]string{"RECEIVER     COUNT\n", "siem             1\n", "total            1\n"}, nil},
		{"show", []string{"show", "--stream", "notify", "--nats-url", url, "1"}, 0,
			[]string{"Dead letter 1 in vigil.notify.dead.siem", "Vigil-Receiver: siem", "brute_force_user"}, nil},
		{"no reason codes", []string{"list", "--stream", "notify", "--reason", "malformed_json", "--nats-url", url}, 2, nil, nil},
		{"no original", []string{"show", "--stream", "notify", "--original", "--nats-url", url, "1"}, 2, nil, nil},
		{"receiver goes with notify", []string{"list", "--receiver", "siem", "--nats-url", url}, 2, nil, nil},
		{"unknown stream", []string{"count", "--stream", "alerts", "--nats-url", url}, 2, nil, nil},
	}
	runDLCases(t, cases)
}

func TestDeadlettersErrors(t *testing.T) {
	empty := testkit.RunNATS(t) // Vigil never ran here
	t.Setenv(natsPasswordEnv, "")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no stream", []string{"list", "--nats-url", empty.ClientURL()}, "stream VIGIL_DEADLETTER not found: has Vigil run against this NATS? (--nats-url, --config)"},
		{"no server", []string{"count", "--nats-url", "nats://127.0.0.1:1"}, "(at nats://127.0.0.1:1)"},
		{"user without password", []string{"list", "--nats-user", "ops"}, "--nats-user needs a password: set $VIGIL_NATS_PASSWORD or give --nats-password-file (never on the command line)"},
		{"missing password file", []string{"list", "--nats-user", "ops", "--nats-password-file", filepath.Join(t.TempDir(), "pw")}, "--nats-password-file: read secret file"},
		{"missing config", []string{"list", "--config", filepath.Join(t.TempDir(), "vigil.yaml")}, "read config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runDL(t, tc.args...)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errs, tc.want)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	cases := []struct{ in, line, text string }{
		{"plain ünïcode", "plain ünïcode", "plain ünïcode"},
		{"\x1b[31mred\x07", `\x1b[31mred\x07`, `\x1b[31mred\x07`},
		{"a\nb\tc", `a\nb\tc`, "a\nb\tc"},
		{"bad \xff byte", `bad \xff byte`, `bad \xff byte`},
		{"rtl \u202e override, \u2028 separator", `rtl \u202e override, \u2028 separator`, `rtl \u202e override, \u2028 separator`},
		{`back\slash`, `back\\slash`, `back\\slash`},
	}
	for _, tc := range cases {
		if got := printable(tc.in); got != tc.line {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := printableText(tc.in); got != tc.text {
			t.Errorf("printableText(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}
