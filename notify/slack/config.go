package slack

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/vigil-sec/vigil/internal/secret"
)

// Resolve modes: how a resolved alert reaches Slack when its firing message
// is known.
const (
	// ResolveUpdate edits the original message in place (chat.update).
	ResolveUpdate = "update"
	// ResolveReply posts a reply in the original message's thread.
	ResolveReply = "reply"
)

// Config is a Slack receiver's configuration. Either a bot token with a
// channel (chat.postMessage; resolves update the original message) or an
// incoming webhook URL (each notification is a new message):
//
//	slack:
//	  token: ${SLACK_BOT_TOKEN}      # or token_file
//	  channel: "#security-alerts"
//	  on_resolve: update              # or reply
//	  links:
//	    - text: Grafana
//	      url: "https://grafana.example.com/d/vigil?var-rule={{.Rule}}&from={{.StartsAtMillis}}"
type Config struct {
	Token          secret.Secret `yaml:"token"`
	TokenFile      string        `yaml:"token_file"`
	WebhookURL     secret.Secret `yaml:"webhook_url"`
	WebhookURLFile string        `yaml:"webhook_url_file"`
	// Channel is a channel name ("#security-alerts") or ID; required with a
	// token.
	Channel string `yaml:"channel"`
	// APIURL points at a Slack-compatible Web API (tests, proxies); default
	// https://slack.com/api/.
	APIURL string `yaml:"api_url"`
	// OnResolve is "update" (default) or "reply". With update, an alert's
	// resolve edits its message, and an incident's top message is marked
	// resolved once its last alert resolved; with reply, both only get a
	// reply in their thread.
	OnResolve string `yaml:"on_resolve"`
	// Links become buttons under each alert; URLs are Go templates.
	Links []Link `yaml:"links"`
}

// Link is a button under an alert message. URL is a text/template executed
// with the alert (see LinkData); every value it can insert is
// URL-query-escaped. The result must be an absolute http(s) URL.
type Link struct {
	Text string `yaml:"text"`
	URL  string `yaml:"url"`
}

// Validate checks the configuration; allowInline permits secrets written
// literally in the config file.
func (c *Config) Validate(allowInline bool) error {
	if err := secret.CheckInline("token", c.Token, allowInline); err != nil {
		return err
	}
	if err := secret.CheckInline("webhook_url", c.WebhookURL, allowInline); err != nil {
		return err
	}
	token, hook, err := c.credentials()
	if err != nil {
		return err
	}
	switch {
	case token.IsZero() && hook.IsZero():
		return errors.New("set token (with channel) or webhook_url, e.g. token: ${SLACK_BOT_TOKEN}")
	case !token.IsZero() && !hook.IsZero():
		return errors.New("token and webhook_url are both set; keep one")
	case !token.IsZero() && c.Channel == "":
		return errors.New(`channel is required with token, e.g. channel: "#security-alerts"`)
	}
	if !hook.IsZero() {
		if err := checkHTTPURL(hook.Value()); err != nil {
			return fmt.Errorf("webhook_url: %w", err)
		}
	}
	if c.APIURL != "" {
		if err := checkHTTPURL(c.APIURL); err != nil {
			return fmt.Errorf("api_url: %w", err)
		}
	}
	switch c.OnResolve {
	case "", ResolveUpdate, ResolveReply:
	default:
		return fmt.Errorf("on_resolve: %q is not a mode; use %q or %q", c.OnResolve, ResolveUpdate, ResolveReply)
	}
	_, err = compileLinks(c.Links)
	return err
}

// credentials resolves the token and webhook URL with their *_file variants.
func (c *Config) credentials() (token, hook secret.Secret, err error) {
	if token, err = secret.Resolve("token", c.Token, c.TokenFile); err != nil {
		return
	}
	hook, err = secret.Resolve("webhook_url", c.WebhookURL, c.WebhookURLFile)
	return
}

// apiURL returns the Web API base URL with a trailing slash.
func (c *Config) apiURL() string {
	if c.APIURL == "" {
		return "https://slack.com/api/"
	}
	return strings.TrimRight(c.APIURL, "/") + "/"
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not repeated: a webhook URL is a secret.
		return errors.New("want an absolute http:// or https:// URL")
	}
	return nil
}
