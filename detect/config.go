package detect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the detect section of the daemon's configuration (yaml key
// "detect").
type Config struct {
	// StateMemory is the fixed budget for per-group window state.
	StateMemory ByteSize `yaml:"state_memory"`
	// Lateness is how far behind the newest event an event may arrive and
	// still be counted.
	Lateness time.Duration `yaml:"lateness"`
	// Rules is a directory of rule files; empty means the embedded default set.
	Rules string `yaml:"rules"`
	// Lists fills in or adds to the operator lists the rule files declare
	// (honey accounts, known-bad address ranges, ...); see docs/rules.md.
	Lists map[string]ListSpec `yaml:"lists"`
	// PrefixV4 and PrefixV6 size the networks of the derived field
	// source_prefix.
	PrefixV4 int `yaml:"prefix_v4"`
	PrefixV6 int `yaml:"prefix_v6"`
	// Incidents configures the correlation of alerts into incidents.
	Incidents IncidentOptions `yaml:"incidents"`
	// CheckpointEvery is how often the instance that applies live events
	// saves detection state to JetStream (Engine.Snapshot), so that a
	// restart restores it and replays only the events after it instead of
	// the rules' whole lookback; 0 turns checkpoints off.
	CheckpointEvery time.Duration `yaml:"checkpoint_every"`
}

// Limits on Config values.
const (
	// MinCheckpointEvery and MaxCheckpointEvery bound CheckpointEvery
	// (but 0, off): a checkpoint pauses intake while it is taken.
	MinCheckpointEvery = 30 * time.Second
	MaxCheckpointEvery = 24 * time.Hour
	// DefaultCheckpointEvery is CheckpointEvery's default.
	DefaultCheckpointEvery = 5 * time.Minute
	// MinStateMemory is the smallest state budget: fastcache never uses less.
	MinStateMemory = 32 << 20
	// MaxLateness bounds Lateness; beyond it alerts would come too late to matter.
	MaxLateness = 10 * time.Minute
)

// DefaultConfig returns the defaults: 256 MiB of state, 5 s of lateness and
// the embedded rule set.
func DefaultConfig() Config {
	return Config{
		StateMemory: 256 << 20, Lateness: 5 * time.Second,
		PrefixV4: defaultPrefixV4, PrefixV6: defaultPrefixV6,
		Incidents:       IncidentOptions{Window: defaultIncidentWindow},
		CheckpointEvery: DefaultCheckpointEvery,
	}
}

// Options returns the engine options c sets (the caller adds the rest).
func (c Config) Options() Options {
	return Options{
		StateMemory: int(c.StateMemory), Lateness: c.Lateness,
		PrefixV4: c.PrefixV4, PrefixV6: c.PrefixV6, Incidents: c.Incidents,
	}
}

// Validate reports what is wrong with c and how to fix it.
func (c Config) Validate() error {
	var errs []error
	if c.StateMemory < MinStateMemory {
		errs = append(errs, fmt.Errorf("detect.state_memory is %s; set it to at least 32MiB", c.StateMemory))
	}
	if c.Lateness < 0 || c.Lateness > MaxLateness {
		errs = append(errs, fmt.Errorf("detect.lateness is %s; set it between 0s and %s", c.Lateness, MaxLateness))
	}
	if c.PrefixV4 < 8 || c.PrefixV4 > 32 {
		errs = append(errs, fmt.Errorf("detect.prefix_v4 is %d; set the IPv4 network size of source_prefix between 8 and 32 (default 24)", c.PrefixV4))
	}
	if c.PrefixV6 < 16 || c.PrefixV6 > 128 {
		errs = append(errs, fmt.Errorf("detect.prefix_v6 is %d; set the IPv6 network size of source_prefix between 16 and 128 (default 64)", c.PrefixV6))
	}
	if w := c.Incidents.Window; w < time.Minute || w > 24*time.Hour {
		errs = append(errs, fmt.Errorf("detect.incidents.window is %s; set it between 1m and 24h (default 30m)", w))
	}
	if e := c.CheckpointEvery; e != 0 && (e < MinCheckpointEvery || e > MaxCheckpointEvery) {
		errs = append(errs, fmt.Errorf("detect.checkpoint_every is %s; set it between 30s and 24h (default 5m), or 0s to turn checkpoints off", e))
	}
	if _, err := NewLists(c.Lists); err != nil {
		errs = append(errs, fmt.Errorf("detect.%w", err))
	}
	return errors.Join(errs...)
}

// ByteSize is a size in bytes that reads from YAML as a plain number or with a
// binary or decimal unit: "256MiB", "1GiB", "512MB", "65536".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize parses a size such as "256MiB", "1GB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: write a whole number with an optional unit (KiB, MiB, GiB, KB, MB, GB), e.g. 256MiB", s)
	}
	return ByteSize(n * mult), nil
}

// String formats b with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a scalar such as 256MiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalText implements encoding.TextUnmarshaler, for flags.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
