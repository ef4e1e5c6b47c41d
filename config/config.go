// Package config reads the daemon's YAML configuration: strictly (unknown keys
// are errors reported with file and line), with every default set in one
// place (Default) and each section validated by the package that owns it.
// Secrets come from "${ENV}" or *_file keys and never print.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/cluster"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/internal/yamlerr"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/notify/jsonlog"
	"github.com/vigil-sec/vigil/privacy"
)

// Config is the whole daemon configuration.
type Config struct {
	// Listen is the admin/metrics HTTP address.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded NATS store and other state.
	DataDir string `yaml:"data_dir"`
	// AllowInlineSecrets permits secrets written literally in the file.
	AllowInlineSecrets bool `yaml:"allow_inline_secrets"`
	// SecretFilePermissions says what a secret or key file that other users
	// may read costs: "warn" (a warning at start and in config check) or
	// "refuse" (Vigil does not start).
	SecretFilePermissions string `yaml:"secret_file_permissions"`

	Log    LogConfig       `yaml:"log"`
	NATS   natsconn.Config `yaml:"nats"`
	Ingest ingest.Config   `yaml:"ingest"`
	Detect detect.Config   `yaml:"detect"`
	// Notify holds the top-level `receivers:` and `routes:` keys and the
	// `notify:` delivery settings.
	Notify  notify.Config  `yaml:",inline"`
	Admin   admin.Config   `yaml:"admin"`
	Privacy privacy.Config `yaml:"privacy"`
	// Cluster runs this instance as one of several sharing the work:
	// active or warm standby (see package cluster).
	Cluster cluster.Config `yaml:"cluster"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Default returns the configuration Vigil runs with when no file is given.
func Default() Config {
	return Config{
		Listen:                "127.0.0.1:9750",
		DataDir:               "./vigil-data",
		SecretFilePermissions: PermissionsWarn,
		Log:                   LogConfig{Level: "info", Format: "json"},
		NATS:                  natsconn.DefaultConfig(),
		Ingest:                ingest.DefaultConfig(),
		Detect:                detect.DefaultConfig(),
		Notify:                notify.DefaultConfig(),
		Admin:                 admin.DefaultConfig(),
		Cluster:               cluster.DefaultConfig(),
	}
}

// consoleReceiver is the receiver used when the config names none: alerts
// go to standard output as JSON lines.
const consoleReceiver = "console"

// withDefaultReceiver gives a config without receivers and routes the
// console receiver and a default route to it.
func (c *Config) withDefaultReceiver() {
	if len(c.Notify.Receivers) == 0 && len(c.Notify.Routes) == 0 {
		c.Notify.Receivers = []notify.ReceiverConfig{{Name: consoleReceiver, Log: &jsonlog.Config{}}}
		c.Notify.Routes = []notify.RouteConfig{{Receivers: []string{consoleReceiver}}}
	}
}

// Validate checks every section. It resolves *_file secrets in place.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("listen is empty; set the admin address, e.g. 127.0.0.1:9750")
	}
	if c.DataDir == "" {
		return errors.New("data_dir is empty; set a directory Vigil may write, e.g. ./vigil-data")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fmt.Errorf("log.format %q: use json or text", c.Log.Format)
	}
	switch c.SecretFilePermissions {
	case PermissionsWarn, PermissionsRefuse:
	default:
		return fmt.Errorf("secret_file_permissions %q: use %s (the default) or %s", c.SecretFilePermissions, PermissionsWarn, PermissionsRefuse)
	}
	if err := c.NATS.Validate(c.AllowInlineSecrets); err != nil {
		return err
	}
	if err := c.Ingest.Validate(); err != nil {
		return err
	}
	if err := c.Detect.Validate(); err != nil {
		return err
	}
	c.withDefaultReceiver()
	if err := c.Notify.Validate(c.AllowInlineSecrets); err != nil {
		return err
	}
	// Both name their keys in full ("admin.tokens[0]: ...").
	if err := c.Admin.Validate(); err != nil {
		return err
	}
	if err := c.Privacy.Validate(); err != nil {
		return err
	}
	return c.Cluster.Validate(!c.NATS.Embedded())
}

// Load reads path over the defaults and validates the result. Errors name
// the file and line.
func Load(path string) (Config, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, raw)
	return cfg, raw, err
}

// Parse decodes raw (named name in errors) over the defaults and validates.
func Parse(name string, raw []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, yamlError(name, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

var (
	notFound = regexp.MustCompile(`field (\S+) not found in type (\S+)`)
	// removedKeys say where the setting of a key that is gone went, by key
	// and the Go type that had it, as yaml/v3 names them.
	removedKeys = map[string]string{
		"notify.Settings.replicas": "notify.replicas is gone; set nats.replicas instead, the replicas of every stream of Vigil, notify's included",
	}
	// yaml/v3 refuses numbers for time.Duration and reports strings that
	// time.ParseDuration refuses the same way.
	badDuration = regexp.MustCompile("cannot unmarshal !!\\w+ `([^`]*)` into time.Duration")
)

// yamlError rewrites a YAML decoding error so each problem reads
// "file: line N: ..." in the words of the config, not of Go types.
func yamlError(name string, err error) error {
	msgs := yamlerr.Messages(err)
	for i, e := range msgs {
		e = notFound.ReplaceAllStringFunc(e, unknownKey)
		e = badDuration.ReplaceAllString(e, `invalid duration "$1": write it with a unit, e.g. 90s, 5m or 1h`)
		e = strings.ReplaceAll(e, "cannot unmarshal", "cannot read")
		msgs[i] = name + ": " + e
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// unknownKey rewrites yaml/v3's "field K not found in type T", saying where
// a removed key's setting went.
func unknownKey(m string) string {
	g := notFound.FindStringSubmatch(m)
	if hint, ok := removedKeys[g[2]+"."+g[1]]; ok {
		return "field " + g[1] + " not found: " + hint
	}
	return "field " + g[1] + " not found: unknown key (check its spelling and section in the configuration reference)"
}

// Hash returns a short, stable hash of the raw config bytes, exported as a
// metric and in the status endpoint so operators can tell which config runs.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// LoadNATS reads only the nats: section (and allow_inline_secrets) of the
// config file path, over the defaults, and validates it: what a tool needs
// to connect as the daemon does, without the environment variables and
// files that the other sections need.
func LoadNATS(path string) (natsconn.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return natsconn.Config{}, fmt.Errorf("read config: %w", err)
	}
	top := struct {
		AllowInlineSecrets bool                 `yaml:"allow_inline_secrets"`
		NATS               natsconn.Config      `yaml:"nats"`
		Other              map[string]yaml.Node `yaml:",inline"` // the other sections, unread
	}{NATS: natsconn.DefaultConfig()}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&top); err != nil && !errors.Is(err, io.EOF) {
		return natsconn.Config{}, yamlError(path, err)
	}
	if err := top.NATS.Validate(top.AllowInlineSecrets); err != nil {
		return natsconn.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return top.NATS, nil
}
