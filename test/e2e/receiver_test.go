package e2e

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/notify/webhook"
)

// delivery is one webhook request a receiver accepted.
type delivery struct {
	ID          string // webhook-id: the same on every retry of one delivery
	Type        string // alert.firing, alert.resolved, ...
	Rule        string
	Fingerprint string
	SourceIP    string
	At          time.Time // when the request arrived
}

// receiver is an httptest webhook endpoint. It checks each request's
// Standard Webhooks signature, answers 204 after an optional delay, and
// records what it accepted.
type receiver struct {
	t     testing.TB
	name  string
	srv   *httptest.Server
	delay time.Duration
	key   []byte

	mu      sync.Mutex
	got     []delivery
	invalid int // requests that failed the signature or decoding checks
}

func newReceiver(t testing.TB, name string, delay time.Duration) *receiver {
	t.Helper()
	key, err := webhook.DecodeSecret(webhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, name: name, delay: delay, key: key}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		if t.Failed() {
			r.logDeliveries()
		}
	})
	return r
}

func (r *receiver) spec() receiverSpec { return receiverSpec{Name: r.name, URL: r.srv.URL + "/hook"} }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	ds, verr := r.verify(req.Header, body)
	if err != nil || verr != nil {
		r.mu.Lock()
		r.invalid++
		r.mu.Unlock()
		r.t.Errorf("receiver %s: bad request: %v %v", r.name, err, verr)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
			return // Vigil gave up; it will retry with the same webhook-id
		}
	}
	r.mu.Lock()
	for _, d := range ds {
		d.At = at
		r.got = append(r.got, d)
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// verify checks the signature and decodes the alerts of one request.
func (r *receiver) verify(h http.Header, body []byte) ([]delivery, error) {
	id := h.Get(webhook.HeaderID)
	ts, err := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
	if id == "" || err != nil {
		return nil, fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	want := webhook.Sign(r.key, id, ts, body)
	if !hmac.Equal([]byte(want), []byte(h.Get(webhook.HeaderSignature))) {
		return nil, fmt.Errorf("signature mismatch")
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	if p.Data.ID != id {
		return nil, fmt.Errorf("data.id %q differs from webhook-id %q", p.Data.ID, id)
	}
	var out []delivery
	for _, a := range p.Data.Alerts {
		out = append(out, delivery{ID: id, Type: p.Type, Rule: a.Rule,
			Fingerprint: a.Fingerprint, SourceIP: a.Labels["source_ip"]})
	}
	return out, nil
}

// deliveries returns a copy of what the receiver accepted so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// alertKey identifies one announcement: an alert's transition.
type alertKey struct {
	Rule, SourceIP, Type string
}

// announcements counts, per rule, source address and transition, the
// distinct webhook-ids received. A receiver may see one webhook-id twice
// (a retry after a crash) and deduplicate it; two ids for one transition
// would be announcing it twice.
func (r *receiver) announcements() map[alertKey]int {
	ids := map[alertKey]map[string]bool{}
	for _, d := range r.deliveries() {
		k := alertKey{d.Rule, d.SourceIP, d.Type}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][d.ID] = true
	}
	out := make(map[alertKey]int, len(ids))
	for k, v := range ids {
		out[k] = len(v)
	}
	return out
}

// count is the number of distinct announcements of k.
func (r *receiver) count(k alertKey) int { return r.announcements()[k] }

// first returns when the first delivery of k arrived.
func (r *receiver) first(k alertKey) (time.Time, bool) {
	for _, d := range r.deliveries() {
		if (alertKey{d.Rule, d.SourceIP, d.Type}) == k {
			return d.At, true
		}
	}
	return time.Time{}, false
}

// logDeliveries writes every accepted delivery to the test log.
func (r *receiver) logDeliveries() {
	for _, d := range r.deliveries() {
		r.t.Logf("receiver %s: %s %s %s %s id=%s", r.name, d.At.Format("15:04:05.000"), d.Type, d.Rule, d.SourceIP, d.ID)
	}
}
