package notify

import (
	"errors"
	"fmt"
	"time"
)

// Settings tunes delivery. They sit under notify: in the daemon's YAML.
type Settings struct {
	// MaxElapsed bounds how long a notification is retried, counted from
	// when it was queued; then it goes to the dead-letter stream.
	MaxElapsed time.Duration `yaml:"max_elapsed"`
	// AttemptTimeout bounds each attempt.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// InitialBackoff and MaxBackoff shape the exponential backoff (with
	// jitter) between attempts. A Retry-After from the receiver wins.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// FloodLimit is how many alerts a receiver gets individually per
	// FloodWindow; past it, further alerts are rolled into one digest per
	// window.
	FloodLimit  int           `yaml:"flood_limit"`
	FloodWindow time.Duration `yaml:"flood_window"`
	// DigestMax caps the alerts in one digest.
	DigestMax int `yaml:"digest_max"`
	// BreakerFailures consecutive retryable failures open a receiver's
	// circuit breaker for BreakerOpenFor.
	BreakerFailures uint32        `yaml:"breaker_failures"`
	BreakerOpenFor  time.Duration `yaml:"breaker_open_for"`
	// AckWait is how long a delivery may stay unacknowledged before JetStream
	// hands it out again (after a crash). Workers extend it every third of
	// it while they hold a delivery, an attempt under way included.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxResponseBytes caps how much of a receiver's response is read.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// RateLimits are each kind's default rate; a receiver's rate_limit
	// overrides it. The log receiver is not limited.
	RateLimits KindRates `yaml:"rate_limits"`
	// QueueMaxAge drops deliveries nobody consumed for this long (a
	// receiver removed from the config, or disabled and never fixed).
	QueueMaxAge time.Duration `yaml:"queue_max_age"`
	// DeadLetterMaxAge is how long dead letters are kept.
	DeadLetterMaxAge time.Duration `yaml:"dead_letter_max_age"`
	// DuplicateWindow is how long JetStream remembers delivery ids to drop
	// a repeated enqueue.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// ResolvedRetention keeps the state of resolved alerts this long.
	ResolvedRetention time.Duration `yaml:"resolved_retention"`
	// SilenceRetention keeps expired silences listed this long.
	SilenceRetention time.Duration `yaml:"silence_retention"`
}

// KindRates holds a default rate per receiver kind.
type KindRates struct {
	// Slack allows about one message per second per channel; Slack
	// receivers posting to the same channel share one bucket.
	Slack        RateLimit `yaml:"slack"`
	Webhook      RateLimit `yaml:"webhook"`
	Alertmanager RateLimit `yaml:"alertmanager"`
}

// DefaultSettings returns the delivery defaults. This is the one place
// defaults are set.
func DefaultSettings() Settings {
	return Settings{
		MaxElapsed:       time.Hour,
		AttemptTimeout:   10 * time.Second,
		InitialBackoff:   time.Second,
		MaxBackoff:       5 * time.Minute,
		FloodLimit:       20,
		FloodWindow:      time.Minute,
		DigestMax:        200,
		BreakerFailures:  5,
		BreakerOpenFor:   30 * time.Second,
		AckWait:          30 * time.Second,
		MaxResponseBytes: 64 << 10,
		RateLimits: KindRates{
			Slack:        RateLimit{PerSecond: 1, Burst: 3},
			Webhook:      RateLimit{PerSecond: 10, Burst: 10},
			Alertmanager: RateLimit{PerSecond: 10, Burst: 10},
		},
		QueueMaxAge:       72 * time.Hour,
		DeadLetterMaxAge:  14 * 24 * time.Hour,
		DuplicateWindow:   time.Hour,
		ResolvedRetention: 24 * time.Hour,
		SilenceRetention:  7 * 24 * time.Hour,
	}
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive duration such as 30s", name))
		}
	}
	positive("max_elapsed", s.MaxElapsed)
	positive("attempt_timeout", s.AttemptTimeout)
	positive("initial_backoff", s.InitialBackoff)
	positive("max_backoff", s.MaxBackoff)
	positive("flood_window", s.FloodWindow)
	positive("breaker_open_for", s.BreakerOpenFor)
	positive("ack_wait", s.AckWait)
	positive("queue_max_age", s.QueueMaxAge)
	positive("dead_letter_max_age", s.DeadLetterMaxAge)
	positive("duplicate_window", s.DuplicateWindow)
	positive("resolved_retention", s.ResolvedRetention)
	positive("silence_retention", s.SilenceRetention)
	if s.MaxBackoff < s.InitialBackoff {
		errs = append(errs, errors.New("max_backoff must not be below initial_backoff"))
	}
	if s.AckWait > 0 && s.AckWait < minAckWait {
		errs = append(errs, fmt.Errorf("ack_wait is %s; set it to at least %s (default 30s): workers mark what they hold in progress every third of it", s.AckWait, minAckWait))
	}
	if s.DuplicateWindow > s.QueueMaxAge {
		errs = append(errs, errors.New("duplicate_window must not exceed queue_max_age"))
	}
	if s.ResolvedRetention <= s.DuplicateWindow {
		// A delivery id is the alert's fingerprint, episode, transition and
		// receiver; an alert whose state was dropped starts again at episode
		// 1, and its first page must not look like one already sent.
		errs = append(errs, errors.New("resolved_retention must exceed duplicate_window, or a new episode of an alert forgotten meanwhile is dropped as a duplicate delivery; raise resolved_retention"))
	}
	if s.FloodLimit < 1 {
		errs = append(errs, errors.New("flood_limit must be at least 1 notification per flood_window"))
	}
	if s.DigestMax < 2 || s.DigestMax > 10000 {
		errs = append(errs, errors.New("digest_max must be between 2 and 10000"))
	}
	if s.BreakerFailures < 1 {
		errs = append(errs, errors.New("breaker_failures must be at least 1"))
	}
	if s.MaxResponseBytes < 1024 {
		errs = append(errs, errors.New("max_response_bytes must be at least 1024"))
	}
	for _, k := range []struct {
		name string
		rl   RateLimit
	}{{KindSlack, s.RateLimits.Slack}, {KindWebhook, s.RateLimits.Webhook}, {KindAlertmanager, s.RateLimits.Alertmanager}} {
		if err := k.rl.validate(); err != nil {
			errs = append(errs, fmt.Errorf("rate_limits.%s: %w", k.name, err))
		}
	}
	return errors.Join(errs...)
}

// minAckWait is the shortest ack_wait: held deliveries are marked in
// progress every third of it.
const minAckWait = time.Second

// heartbeatEvery is how often held deliveries are marked in progress, well
// within ack_wait.
func (s *Settings) heartbeatEvery() time.Duration {
	return max(s.AckWait/3, 10*time.Millisecond)
}
