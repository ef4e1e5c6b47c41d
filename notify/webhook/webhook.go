// Package webhook delivers notifications as JSON POSTs signed per the
// Standard Webhooks specification (https://www.standardwebhooks.com): the
// webhook-id header is the same on every retry of one delivery, so receivers
// can deduplicate, and webhook-signature lets them check origin and
// integrity. The body is documented in docs/webhooks.md.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/notify/receiver"
)

// Payload is the JSON body of every webhook request.
type Payload struct {
	// Type is "alert.firing", "alert.repeat", "alert.resolved" or
	// "alert.digest".
	Type string `json:"type"`
	// Timestamp is when the notification was queued; it is the same on
	// every attempt.
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the payload's content.
type Data struct {
	// ID equals the webhook-id header.
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	// Summary is one line of text: the alert's headline, or the digest's
	// "37 more alerts: ..." line.
	Summary string `json:"summary"`
	// Alerts holds one alert, or every alert of a digest.
	Alerts []detect.Alert `json:"alerts"`
}

// Webhook is a receiver that POSTs signed JSON to one URL.
type Webhook struct {
	url  string
	key  []byte
	http *receiver.HTTP
	now  func() time.Time
}

// New returns a webhook receiver for a validated cfg.
func New(cfg Config, h *receiver.HTTP, now func() time.Time) (*Webhook, error) {
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	key, err := cfg.signingKey()
	if err != nil {
		return nil, err
	}
	return &Webhook{url: cfg.URL, key: key, http: h, now: now}, nil
}

// MessageID returns the webhook-id used for a notification ID.
func MessageID(notificationID string) string { return "msg_" + notificationID }

// Body returns the JSON body for n.
func Body(n *receiver.Notification) ([]byte, error) {
	p := Payload{
		Type:      "alert." + string(n.Kind),
		Timestamp: n.Created.UTC(),
		Data: Data{
			ID:       MessageID(n.ID),
			Receiver: n.Receiver,
			Alerts:   n.Alerts,
		},
	}
	if n.Kind == receiver.KindDigest {
		p.Data.Summary = receiver.DigestSummary(n.Alerts)
	} else {
		p.Data.Summary = receiver.Headline(n.Alert())
	}
	return json.Marshal(p)
}

// Send makes one signed POST.
func (w *Webhook) Send(ctx context.Context, n *receiver.Notification) (receiver.Result, error) {
	body, err := Body(n)
	if err != nil {
		return receiver.Result{}, receiver.Permanent(fmt.Errorf("encode webhook body: %w", err))
	}
	id := MessageID(n.ID)
	ts := w.now().Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "vigil-webhook")
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if w.key != nil {
		h.Set(HeaderSignature, Sign(w.key, id, ts, body))
	}
	if _, err := w.http.Post(ctx, w.url, h, body); err != nil {
		return receiver.Result{}, fmt.Errorf("webhook: %w", err)
	}
	return receiver.Result{}, nil
}
