package event

import (
	"fmt"
	"time"
)

// Limits bound what one event may be.
type Limits struct {
	MaxEventBytes int           // max bytes of one event (one JSON object / NDJSON line); default 16 KiB
	MaxFutureSkew time.Duration // ts further than this in the future is rejected; default 5m
}

// Defaults and bounds of Limits.
const (
	DefaultMaxEventBytes = 16 << 10
	DefaultMaxFutureSkew = 5 * time.Minute

	minEventBytes = 1 << 10
	maxEventBytes = 1 << 20
	minFutureSkew = time.Second
	maxFutureSkew = 24 * time.Hour
)

// DefaultLimits returns the limits Vigil uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxEventBytes: DefaultMaxEventBytes, MaxFutureSkew: DefaultMaxFutureSkew}
}

// Validate reports whether l is usable. A zero field means "use the default"
// and is valid.
func (l Limits) Validate() error {
	if l.MaxEventBytes != 0 && (l.MaxEventBytes < minEventBytes || l.MaxEventBytes > maxEventBytes) {
		return fmt.Errorf("max event bytes is %d: set it between %d (1 KiB) and %d (1 MiB), or leave it 0 for the default %d",
			l.MaxEventBytes, minEventBytes, maxEventBytes, DefaultMaxEventBytes)
	}
	if l.MaxFutureSkew != 0 && (l.MaxFutureSkew < minFutureSkew || l.MaxFutureSkew > maxFutureSkew) {
		return fmt.Errorf("max future skew is %s: set it between %s and %s, or leave it 0 for the default %s",
			l.MaxFutureSkew, minFutureSkew, maxFutureSkew, DefaultMaxFutureSkew)
	}
	return nil
}

// withDefaults returns l with zero fields replaced by their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = DefaultMaxEventBytes
	}
	if l.MaxFutureSkew == 0 {
		l.MaxFutureSkew = DefaultMaxFutureSkew
	}
	return l
}
