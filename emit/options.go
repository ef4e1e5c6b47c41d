package emit

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the Emitter's options.
const (
	DefaultSubjectPrefix = "vigil.events"
	DefaultBufferSize    = 8192
	DefaultMaxBatch      = 100
	DefaultMaxBatchBytes = 128 << 10
	DefaultLinger        = 5 * time.Millisecond
	DefaultMaxInflight   = 64
	DefaultAckTimeout    = 5 * time.Second
	DefaultMinBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	// DefaultMaxEventBytes matches Vigil's default limit for one event.
	DefaultMaxEventBytes = 16 << 10
)

// Option configures an Emitter.
type Option func(*config) error

type config struct {
	service       string
	subjectPrefix string
	bufferSize    int
	maxBatch      int
	maxBatchBytes int
	maxEventBytes int
	linger        time.Duration
	maxInflight   int
	ackTimeout    time.Duration
	minBackoff    time.Duration
	maxBackoff    time.Duration
	reg           prometheus.Registerer
	logger        *slog.Logger
	now           func() time.Time
	natsOpts      []nats.Option
}

func defaultConfig() config {
	return config{
		subjectPrefix: DefaultSubjectPrefix,
		bufferSize:    DefaultBufferSize,
		maxBatch:      DefaultMaxBatch,
		maxBatchBytes: DefaultMaxBatchBytes,
		maxEventBytes: DefaultMaxEventBytes,
		linger:        DefaultLinger,
		maxInflight:   DefaultMaxInflight,
		ackTimeout:    DefaultAckTimeout,
		minBackoff:    DefaultMinBackoff,
		maxBackoff:    DefaultMaxBackoff,
		logger:        slog.New(slog.DiscardHandler),
		now:           time.Now,
	}
}

func buildConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("emit: invalid option: %w", err)
	}
	if cfg.service != "" && !validService(cfg.service) {
		return cfg, fmt.Errorf("emit: invalid option: service %q must match ^[a-z0-9][a-z0-9_.-]{0,63}$", cfg.service)
	}
	return cfg, nil
}

// WithService names the service whose events this Emitter publishes; it is
// used for every event whose Service field is empty. Name it as Vigil should
// show it, for example "billing-api".
func WithService(name string) Option {
	return func(c *config) error { c.service = name; return nil }
}

// WithSubjectPrefix changes the subject prefix (default "vigil.events"); the
// subject of a message is prefix + "." + service. Use it where NATS maps
// subjects between accounts. A prefix below "vigil.events." is refused:
// Vigil compares the whole subject after "vigil.events." with each event's
// service, so the extra tokens belong in the service name.
func WithSubjectPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" {
			return errors.New("subject prefix is empty")
		}
		if rest, ok := strings.CutPrefix(prefix, DefaultSubjectPrefix+"."); ok {
			return fmt.Errorf("subject prefix %q would put every event's service under %q, and Vigil would reject them (service_mismatch): keep the default prefix and name the service %q instead", prefix, rest, rest+".<service>")
		}
		c.subjectPrefix = prefix
		return nil
	}
}

// WithBufferSize sets how many events may wait for the publisher (default
// 8192). When the buffer is full, Emit drops the event and counts it.
func WithBufferSize(n int) Option {
	return positive("buffer size", n, func(c *config) { c.bufferSize = n })
}

// WithMaxBatch sets the most events one message holds (default 100); 1
// disables batching.
func WithMaxBatch(n int) Option {
	return positive("max batch", n, func(c *config) { c.maxBatch = n })
}

// WithMaxBatchBytes caps the size of one message (default 128 KiB; it is
// also kept below the server's max_payload).
func WithMaxBatchBytes(n int) Option {
	return positive("max batch bytes", n, func(c *config) { c.maxBatchBytes = n })
}

// WithMaxEventBytes sets the size above which one encoded event is dropped
// as too large (default 16 KiB, Vigil's own limit). Raise it only together
// with Vigil's limit.
func WithMaxEventBytes(n int) Option {
	return positive("max event bytes", n, func(c *config) { c.maxEventBytes = n })
}

// WithMaxInflight sets how many messages may be built but not yet
// acknowledged (default 64). At the limit the publisher stops taking events
// from the buffer.
func WithMaxInflight(n int) Option {
	return positive("max in-flight", n, func(c *config) { c.maxInflight = n })
}

func positive(name string, n int, set func(*config)) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%s is %d; it must be at least 1", name, n)
		}
		set(c)
		return nil
	}
}

// WithLinger sets how long the first event of a batch may wait for more
// (default 5 ms). Meanwhile events collect in the buffer without waking the
// publisher, which keeps the cost per request low; then everything buffered
// is sent in messages of up to WithMaxBatch events. 0 publishes at once,
// batching only what accumulated while the previous message was sent.
func WithLinger(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("linger is %s; it must not be negative", d)
		}
		c.linger = d
		return nil
	}
}

// WithAckTimeout sets how long to wait for JetStream's acknowledgement before
// the message is sent again (default 5 s).
func WithAckTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("ack timeout is %s; it must be positive", d)
		}
		c.ackTimeout = d
		return nil
	}
}

// WithRetryBackoff sets the delay before sending again after a failed publish:
// it starts at min and doubles up to max (defaults 100 ms and 5 s).
func WithRetryBackoff(minDelay, maxDelay time.Duration) Option {
	return func(c *config) error {
		if minDelay <= 0 || maxDelay < minDelay {
			return fmt.Errorf("retry backoff %s..%s: need 0 < min <= max", minDelay, maxDelay)
		}
		c.minBackoff, c.maxBackoff = minDelay, maxDelay
		return nil
	}
}

// WithRegisterer registers the Emitter's metrics (vigil_emit_*) on reg. Without
// it the metrics are kept but not registered; [Emitter.Stats] still reads them.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) error { c.reg = reg; return nil }
}

// WithLogger sets the logger for connection-level problems (default: discard).
// The Emitter logs when publishing starts failing and when it recovers, not
// once per event.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("logger is nil")
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock that stamps events emitted without a time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		c.now = now
		return nil
	}
}

// WithNATSOptions adds nats.go options for the connection that [Connect]
// opens (credentials, TLS, name...). New ignores them.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *config) error { c.natsOpts = append(c.natsOpts, opts...); return nil }
}
