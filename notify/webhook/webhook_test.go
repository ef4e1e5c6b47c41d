package webhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// The reference vector published with the Standard Webhooks specification.
func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	key, err := DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestDecodeSecret(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
	}{
		{"valid", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"},
		{"not base64", "whsec_***", "not valid base64"},
		{"too short", "whsec_c2VjcmV0", "want 24 to 64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSecret(tc.in)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tc.in) {
				t.Errorf("error repeats the secret: %v", err)
			}
		})
	}
}

type seen struct {
	header http.Header
	body   []byte
}

func TestSendSignsAndClassifies(t *testing.T) {
	var (
		mu     sync.Mutex
		got    []seen
		status = http.StatusNoContent
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Header.Clone(), b})
		st := status
		mu.Unlock()
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(st)
	}))
	defer srv.Close()
	now := time.Unix(1700000000, 0)
	cfg := Config{URL: srv.URL + "/hook?token=abc", Secret: secret.New("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "test")}
	w, err := New(cfg, receiver.NewHTTP(nil, 0, func() time.Time { return now }), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	alert := detect.Alert{Rule: "service_outage", Severity: "critical", Transition: detect.TransitionFiring, Fingerprint: "fp",
		Summary: "api outage: 81.2% of requests failing", Value: 0.811765, Threshold: 0.5, Unit: detect.UnitShare}
	n := &receiver.Notification{ID: "abc123", Receiver: "siem", Kind: receiver.KindFiring, Alerts: []detect.Alert{alert}, Created: now.Add(-time.Minute)}

	if _, err := w.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	r := got[0]
	if r.header.Get(HeaderID) != "msg_abc123" || r.header.Get(HeaderTimestamp) != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("headers = %v", r.header)
	}
	key, _ := DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if sig := r.header.Get(HeaderSignature); sig != Sign(key, "msg_abc123", now.Unix(), r.body) {
		t.Errorf("signature %s does not verify", sig)
	}
	var p Payload
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "alert.firing" || p.Data.ID != "msg_abc123" || p.Data.Summary != "FIRING [critical] service_outage: api outage: 81.2% of requests failing" ||
		!p.Timestamp.Equal(n.Created) || p.Data.Alerts[0].Fingerprint != "fp" {
		t.Errorf("payload = %+v", p)
	}
	// Machines get the raw numbers and their unit.
	for _, want := range []string{`"value":0.811765`, `"threshold":0.5`, `"unit":"share"`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("body %s lacks %s", r.body, want)
		}
	}

	for _, tc := range []struct {
		status    int
		retryable bool
		after     time.Duration
		disable   bool
	}{
		{http.StatusServiceUnavailable, true, 7 * time.Second, false},
		{http.StatusTooManyRequests, true, 7 * time.Second, false},
		{http.StatusInternalServerError, true, 0, false},
		{http.StatusRequestTimeout, true, 0, false},
		{http.StatusBadRequest, false, 0, false},
		{http.StatusUnauthorized, false, 0, false},
		{http.StatusGone, false, 0, true},
		{http.StatusFound, false, 0, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			mu.Lock()
			status = tc.status
			mu.Unlock()
			_, err := w.Send(t.Context(), n)
			c := receiver.Classify(err)
			if err == nil || c.Retryable != tc.retryable || c.RetryAfter != tc.after || c.Disable != tc.disable {
				t.Errorf("err = %v, class = %+v; want retryable %v after %s disable %v", err, c, tc.retryable, tc.after, tc.disable)
			}
			if err != nil && strings.Contains(err.Error(), "token=abc") {
				t.Errorf("error reveals the URL: %v", err)
			}
		})
	}
}

func TestUnsignedWithoutSecret(t *testing.T) {
	var hdr http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hdr = r.Header.Clone() }))
	defer srv.Close()
	w, err := New(Config{URL: srv.URL}, receiver.NewHTTP(nil, 0, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	n := &receiver.Notification{ID: "x", Kind: receiver.KindDigest, Alerts: []detect.Alert{{Rule: "a"}, {Rule: "a"}}}
	if _, err := w.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if hdr.Get(HeaderSignature) != "" || hdr.Get(HeaderID) != "msg_x" {
		t.Errorf("headers = %v, want an id and no signature", hdr)
	}
}
