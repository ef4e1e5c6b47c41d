// Package slack delivers notifications to Slack with Block Kit messages,
// through the Web API (chat.postMessage with a bot token, so a resolve can
// update the original message or reply in its thread) or an incoming
// webhook. Every piece of alert text is escaped: user names, paths and user
// agents come from attackers.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/vigil-sec/vigil/notify/receiver"
)

// Slack is a Slack receiver.
type Slack struct {
	api        *slackapi.Client // nil in webhook mode
	webhookURL string           // never logged
	channel    string
	onResolve  string
	links      []link
	http       *receiver.HTTP
	now        func() time.Time
}

// New returns a Slack receiver for a validated cfg. h carries every request,
// so its size limit and error handling apply to the Web API too.
func New(cfg Config, h *receiver.HTTP, now func() time.Time) (*Slack, error) {
	token, hook, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	links, err := compileLinks(cfg.Links)
	if err != nil {
		return nil, err
	}
	s := &Slack{channel: cfg.Channel, onResolve: cfg.OnResolve, links: links, http: h, now: now}
	if s.onResolve == "" {
		s.onResolve = ResolveUpdate
	}
	switch {
	case !hook.IsZero():
		s.webhookURL = hook.Value()
	case !token.IsZero():
		s.api = slackapi.New(token.Value(), slackapi.OptionAPIURL(cfg.apiURL()), slackapi.OptionHTTPClient(h))
	default:
		return nil, errors.New("slack: set token (with channel) or webhook_url")
	}
	return s, nil
}

// Send delivers n. Through the Web API an alert of an incident is posted in
// the incident's thread (see sendThreaded); another firing alert is a new
// message whose channel and ts come back in the Result; its repeat is a
// reply in its thread; its resolve updates it (or replies, per on_resolve).
// Through an incoming webhook every notification is a new message.
func (s *Slack) Send(ctx context.Context, n *receiver.Notification) (receiver.Result, error) {
	var msg message
	if n.Kind == receiver.KindDigest {
		msg = renderDigest(n.Alerts)
	} else {
		msg = renderAlert(n.Alert(), s.links, s.now())
	}
	if s.api == nil {
		return receiver.Result{}, s.postWebhook(ctx, msg)
	}
	// An alert of an incident goes to the incident's thread. A repeat or
	// resolve of an alert announced before its incident had a thread here
	// (state from an older Vigil) stays with its own message.
	if th := n.Thread; th != nil && n.Kind != receiver.KindDigest && (!th.Ref.IsZero() || n.Kind == receiver.KindFiring) {
		return s.sendThreaded(ctx, n, msg)
	}
	switch {
	case n.Kind == receiver.KindRepeat && !n.Ref.IsZero():
		_, err := s.post(ctx, n.Ref.Channel, n.Ref.TS, msg)
		return receiver.Result{Ref: n.Ref}, err
	case n.Kind == receiver.KindResolved && !n.Ref.IsZero():
		return s.resolve(ctx, n.Ref, msg)
	default:
		ref, err := s.post(ctx, s.channel, "", msg)
		return receiver.Result{Ref: ref}, err
	}
}

func (s *Slack) resolve(ctx context.Context, ref receiver.Ref, msg message) (receiver.Result, error) {
	if s.onResolve == ResolveUpdate {
		_, _, _, err := s.api.UpdateMessageContext(ctx, ref.Channel, ref.TS,
			slackapi.MsgOptionText(msg.text, false), slackapi.MsgOptionBlocks(msg.blocks...))
		if err == nil || !messageGone(err) {
			return receiver.Result{Ref: ref}, classify("chat.update", err)
		}
		// The original cannot be edited any more: say it in its thread.
	}
	_, err := s.post(ctx, ref.Channel, ref.TS, msg)
	return receiver.Result{Ref: ref}, err
}

// post sends msg to channel, in the thread of threadTS when set.
func (s *Slack) post(ctx context.Context, channel, threadTS string, msg message) (receiver.Ref, error) {
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(msg.text, false),
		slackapi.MsgOptionBlocks(msg.blocks...),
		slackapi.MsgOptionDisableLinkUnfurl(),
		slackapi.MsgOptionDisableMediaUnfurl(),
	}
	if threadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(threadTS))
	}
	ch, ts, err := s.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return receiver.Ref{}, classify("chat.postMessage", err)
	}
	return receiver.Ref{Channel: ch, TS: ts}, nil
}

func (s *Slack) postWebhook(ctx context.Context, msg message) error {
	no := false
	body, err := json.Marshal(slackapi.WebhookMessage{
		Text:        msg.text,
		Blocks:      &slackapi.Blocks{BlockSet: msg.blocks},
		UnfurlLinks: &no,
		UnfurlMedia: &no,
	})
	if err != nil {
		return receiver.Permanent(fmt.Errorf("slack: encode webhook message: %w", err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if _, err := s.http.Post(ctx, s.webhookURL, h, body); err != nil {
		return fmt.Errorf("slack incoming webhook: %w", err)
	}
	return nil
}

// retryableCode reports whether a Slack Web API error code may clear up on a
// later attempt.
func retryableCode(code string) bool {
	switch code {
	case "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
		return true
	}
	return false
}

// disablingCode reports whether a Slack Web API error code means no message
// can be sent until the configuration changes.
func disablingCode(code string) bool {
	switch code {
	case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
		"channel_not_found", "is_archived", "not_in_channel":
		return true
	}
	return false
}

// classify turns a slack-go error into a receiver error. HTTP-level failures
// are already *receiver.Error (they come from receiver.HTTP); Web API errors
// ({"ok": false, "error": "..."}) are classified by code.
func classify(method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*receiver.Error](err); ok {
		return fmt.Errorf("slack %s: %w", method, err)
	}
	if rl, ok := errors.AsType[*slackapi.RateLimitedError](err); ok {
		return receiver.Temporary(fmt.Errorf("slack %s: %w", method, err), rl.RetryAfter)
	}
	if se, ok := errors.AsType[slackapi.SlackErrorResponse](err); ok {
		e := &receiver.Error{Err: fmt.Errorf("slack %s: %w", method, err)}
		e.Retryable = retryableCode(se.Err)
		e.Disable = disablingCode(se.Err)
		return e
	}
	// Decoding failures and the like: most likely a proxy hiccup.
	return receiver.Temporary(fmt.Errorf("slack %s: %w", method, err), 0)
}

// messageGone reports whether chat.update failed because the message can no
// longer be edited, or a reply because its thread's message is gone.
func messageGone(err error) bool {
	se, ok := errors.AsType[slackapi.SlackErrorResponse](err)
	if !ok {
		return false
	}
	switch se.Err {
	case "message_not_found", "cant_update_message", "edit_window_closed", "thread_not_found", "invalid_thread_ts":
		return true
	}
	return false
}
