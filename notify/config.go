package notify

import (
	"errors"
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/notify/alertmanager"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/notify/slack"
	"github.com/vigil-sec/vigil/notify/webhook"
)

// Config is the notification part of the daemon's configuration. Receivers
// and routes are top-level keys of the daemon's YAML (embed Config inline);
// delivery tuning lives under notify:. Decode onto DefaultConfig() so that
// omitted settings keep their defaults.
type Config struct {
	Receivers []ReceiverConfig `yaml:"receivers"`
	Routes    []RouteConfig    `yaml:"routes"`
	Notify    Settings         `yaml:"notify"`
}

// DefaultConfig returns a Config with default settings and no receivers.
func DefaultConfig() Config { return Config{Notify: DefaultSettings()} }

// ReceiverConfig is one named receiver. Exactly one of slack, webhook,
// alertmanager and log is set.
type ReceiverConfig struct {
	// Name identifies the receiver in routes, metrics and subjects: letters,
	// digits, '-' and '_', at most 64.
	Name         string               `yaml:"name"`
	Slack        *slack.Config        `yaml:"slack,omitempty"`
	Webhook      *webhook.Config      `yaml:"webhook,omitempty"`
	Alertmanager *alertmanager.Config `yaml:"alertmanager,omitempty"`
	Log          *jsonlog.Config      `yaml:"log,omitempty"`
	// RateLimit overrides the kind's default rate, notify.rate_limits.<kind>.
	RateLimit *RateLimit `yaml:"rate_limit,omitempty"`
	// FloodLimit overrides notify.flood_limit for this receiver.
	FloodLimit int `yaml:"flood_limit,omitempty"`
}

// RateLimit is a token bucket: PerSecond notifications per second on
// average, Burst at once.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

func (rl RateLimit) validate() error {
	if rl.PerSecond <= 0 || rl.Burst < 1 {
		return errors.New("per_second must be > 0 and burst >= 1, e.g. {per_second: 1, burst: 3}")
	}
	return nil
}

// Receiver kinds.
const (
	KindSlack        = "slack"
	KindWebhook      = "webhook"
	KindAlertmanager = "alertmanager"
	KindLog          = "log"
)

// Kind returns the receiver's kind, or "" unless exactly one is set.
func (r *ReceiverConfig) Kind() string {
	var kinds []string
	if r.Slack != nil {
		kinds = append(kinds, KindSlack)
	}
	if r.Webhook != nil {
		kinds = append(kinds, KindWebhook)
	}
	if r.Alertmanager != nil {
		kinds = append(kinds, KindAlertmanager)
	}
	if r.Log != nil {
		kinds = append(kinds, KindLog)
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// RouteConfig sends matching alerts to receivers. Routes are tried in
// order; the first match wins unless it says continue: true. A route
// without match or match_re matches every alert: the default route.
type RouteConfig struct {
	// Match maps a label to the values it may have (any of them). The
	// alert's rule, severity and category are labels too.
	Match map[string]StringList `yaml:"match,omitempty"`
	// MatchRE maps a label to a regular expression its whole value must
	// match.
	MatchRE   map[string]string `yaml:"match_re,omitempty"`
	Receivers []string          `yaml:"receivers"`
	Continue  bool              `yaml:"continue,omitempty"`
	// PerIncident tells the route's receivers of each incident once: its
	// first alert that reaches them, and later alerts of the incident only
	// when they raise its severity past what the receiver was told (with
	// the repeats and resolves of the alerts it was told of). For a pager.
	PerIncident bool `yaml:"per_incident,omitempty"`
}

// catchAll reports whether the route matches every alert.
func (r *RouteConfig) catchAll() bool { return len(r.Match) == 0 && len(r.MatchRE) == 0 }

// StringList is a YAML sequence of strings that also accepts one scalar:
// "severity: high" means "severity: [high]".
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := n.Decode(&ss); err != nil {
		return fmt.Errorf("line %d: want a value or a list of values", n.Line)
	}
	*l = ss
	return nil
}

var (
	receiverNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	labelNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// Validate checks the whole notification config and returns every problem
// found, each saying where it is and how to fix it. allowInlineSecrets
// permits secrets written literally in the config file. Secret files
// (*_file) are read to check them.
func (c *Config) Validate(allowInlineSecrets bool) error {
	var errs []error
	names := map[string]bool{}
	if len(c.Receivers) == 0 {
		errs = append(errs, errors.New("receivers: none configured; add at least one, e.g. {name: console, log: {}}"))
	}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		if err := r.validate(allowInlineSecrets); err != nil {
			errs = append(errs, fmt.Errorf("receivers[%d] (%s): %w", i, r.Name, err))
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("receivers[%d]: name %q is used twice; receiver names must be unique", i, r.Name))
		}
		names[r.Name] = true
	}
	errs = append(errs, validateRoutes(c.Routes, names)...)
	if err := c.Notify.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("notify: %w", err))
	}
	return errors.Join(errs...)
}

func (r *ReceiverConfig) validate(allowInline bool) error {
	if !receiverNameRE.MatchString(r.Name) {
		return errors.New("name: want 1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
	}
	var err error
	switch r.Kind() {
	case KindSlack:
		err = r.Slack.Validate(allowInline)
	case KindWebhook:
		err = r.Webhook.Validate(allowInline)
	case KindAlertmanager:
		err = r.Alertmanager.Validate()
	case KindLog:
	default:
		return errors.New("set exactly one of slack:, webhook:, alertmanager: or log: {}")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.Kind(), err)
	}
	if r.RateLimit != nil {
		if err := r.RateLimit.validate(); err != nil {
			return fmt.Errorf("rate_limit: %w", err)
		}
	}
	if r.FloodLimit < 0 {
		return errors.New("flood_limit must not be negative; leave it out to use notify.flood_limit")
	}
	return nil
}
