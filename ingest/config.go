package ingest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/event"
)

// Config is the `ingest:` section of the daemon config.
type Config struct {
	// MaxEventBytes bounds one event (one JSON object or NDJSON line).
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MaxFutureSkew rejects events whose ts is further in the future.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`

	// StreamMaxAge is how long JetStream keeps events (retention).
	StreamMaxAge time.Duration `yaml:"stream_max_age"`
	// StreamMaxBytes bounds the event stream's size; -1 is unlimited.
	StreamMaxBytes int64 `yaml:"stream_max_bytes"`
	// DuplicateWindow is how long after a message its service's retries
	// (same subject, same Nats-Msg-Id) are dropped; see dedup.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// DeadLetterMaxAge is how long rejected messages are kept. The old
	// spelling deadletter_max_age is read too, with a warning.
	DeadLetterMaxAge time.Duration `yaml:"dead_letter_max_age"`
	// DeadLetterMaxBytes bounds the dead-letter stream, so a flood of junk
	// cannot fill the disk; the oldest are dropped first. The old spelling
	// deadletter_max_bytes is read too, with a warning.
	DeadLetterMaxBytes int64 `yaml:"dead_letter_max_bytes"`

	// Consumer is the durable consumer's name.
	Consumer string `yaml:"consumer"`
	// FetchBatch is how many messages the consumer keeps requested ahead
	// of processing (the client's buffer, refilled as messages are used).
	FetchBatch int `yaml:"fetch_batch"`
	// FetchWait is how long one pull request waits for messages when idle
	// before it is renewed; below 1s it counts as 1s.
	FetchWait time.Duration `yaml:"fetch_wait"`
	// AckWait is how long JetStream waits for an ack before redelivering.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxAckPending bounds unacknowledged messages in flight.
	MaxAckPending int `yaml:"max_ack_pending"`

	// Metric label bounds: past them values become "other".
	MaxServices  int  `yaml:"max_services"`
	MaxEndpoints int  `yaml:"max_endpoints"` // per service
	ClientLabel  bool `yaml:"client_label"`  // add client_id as label "client"
	MaxClients   int  `yaml:"max_clients"`
	// MaxRequestSeries bounds the number of label combinations of
	// vigil_http_requests_total; past it new combinations are counted under
	// endpoint, method and code "other".
	MaxRequestSeries int `yaml:"max_request_series"`

	// deprecated says which old spellings the YAML used; see Deprecations.
	deprecated []string
}

// renamed maps the old spellings of keys to the current ones: notify's
// dead_letter_max_age set the spelling.
var renamed = map[string]string{
	"deadletter_max_age":   "dead_letter_max_age",
	"deadletter_max_bytes": "dead_letter_max_bytes",
}

// Deprecations returns a warning for each old key spelling the config was
// read with, saying what to rename it to.
func (c Config) Deprecations() []string { return c.deprecated }

// UnmarshalYAML implements yaml.Unmarshaler. It reads the old spellings of
// renamed keys as the new ones (noting each for Deprecations), refuses a key
// given in both spellings, and refuses unknown keys as strictly as the rest
// of the config (the decoder's known-fields check does not reach inside an
// Unmarshaler), reporting each with its line.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	if n.Kind != yaml.MappingNode {
		return n.Decode((*plain)(c))
	}
	known := map[string]bool{}
	t := reflect.TypeFor[plain]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" {
			known[name] = true
		}
	}
	m := *n
	m.Content = slices.Clone(n.Content)
	seen := map[string]bool{}
	var errs []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := *m.Content[i]
		if cur, ok := renamed[k.Value]; ok {
			c.deprecated = append(c.deprecated, fmt.Sprintf("line %d: ingest.%s is deprecated; rename it to ingest.%s", k.Line, k.Value, cur))
			k.Value = cur
			m.Content[i] = &k
		}
		switch {
		case !known[k.Value]:
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type ingest.Config", k.Line, k.Value))
		case seen[k.Value]:
			errs = append(errs, fmt.Sprintf("line %d: ingest.%s is set twice (once in its old spelling); keep ingest.%s", k.Line, k.Value, k.Value))
		}
		seen[k.Value] = true
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return m.Decode((*plain)(c))
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	l := event.DefaultLimits()
	return Config{
		MaxEventBytes:      l.MaxEventBytes,
		MaxFutureSkew:      l.MaxFutureSkew,
		StreamMaxAge:       7 * 24 * time.Hour,
		StreamMaxBytes:     -1,
		DuplicateWindow:    2 * time.Minute,
		DeadLetterMaxAge:   30 * 24 * time.Hour,
		DeadLetterMaxBytes: 1 << 30,
		Consumer:           "vigil",
		FetchBatch:         1000,
		FetchWait:          time.Second,
		AckWait:            30 * time.Second,
		MaxAckPending:      20000,
		MaxServices:        100,
		MaxEndpoints:       200,
		MaxClients:         100,
		MaxRequestSeries:   20000,
	}
}

// Limits returns the event limits this config sets.
func (c Config) Limits() event.Limits {
	return event.Limits{MaxEventBytes: c.MaxEventBytes, MaxFutureSkew: c.MaxFutureSkew}
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	if err := c.Limits().Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	checks := []struct {
		ok  bool
		msg string
	}{
		{c.StreamMaxAge >= time.Minute, "ingest.stream_max_age must be at least 1m (default 168h)"},
		{c.DuplicateWindow > 0 && c.DuplicateWindow <= c.StreamMaxAge, "ingest.duplicate_window must be positive and at most stream_max_age (default 2m)"},
		{c.DeadLetterMaxAge >= time.Minute, "ingest.dead_letter_max_age must be at least 1m (default 720h)"},
		{c.StreamMaxBytes == -1 || c.StreamMaxBytes > 0, "ingest.stream_max_bytes must be -1 (unlimited) or positive"},
		{c.DeadLetterMaxBytes == -1 || c.DeadLetterMaxBytes > 0, "ingest.dead_letter_max_bytes must be -1 (unlimited) or positive"},
		{c.Consumer != "", "ingest.consumer must name the durable consumer (default \"vigil\")"},
		{c.FetchBatch >= 1 && c.FetchBatch <= 10000, "ingest.fetch_batch must be 1..10000 (default 1000)"},
		{c.FetchWait >= 10*time.Millisecond, "ingest.fetch_wait must be at least 10ms (default 1s)"},
		{c.AckWait >= time.Second, "ingest.ack_wait must be at least 1s (default 30s)"},
		{c.MaxAckPending >= c.FetchBatch, "ingest.max_ack_pending must be at least fetch_batch"},
		{c.MaxServices >= 1, "ingest.max_services must be at least 1 (default 100)"},
		{c.MaxEndpoints >= 1, "ingest.max_endpoints must be at least 1 (default 200)"},
		{c.MaxClients >= 1, "ingest.max_clients must be at least 1 (default 100)"},
		{c.MaxRequestSeries >= 1, "ingest.max_request_series must be at least 1 (default 20000)"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return errors.New(ch.msg)
		}
	}
	return nil
}
