package admin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the `admin:` section of Vigil's configuration.
type Config struct {
	// Tokens are the bearer tokens accepted, each stored only as a SHA-256.
	Tokens []TokenConfig `yaml:"tokens"`
	// MetricsAuth requires a read token on /metrics; it is open by default
	// so that Prometheus can scrape without a secret.
	MetricsAuth bool `yaml:"metrics_auth"`
	// TLS serves the listener over TLS, and with client_ca_file over mTLS.
	TLS TLSConfig `yaml:"tls"`
	// RateLimit bounds the request rate of each client.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes is the largest request header block accepted.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// Timeouts are the HTTP server's timeouts.
	Timeouts TimeoutsConfig `yaml:"timeouts"`
}

// TokenConfig is one accepted bearer token.
type TokenConfig struct {
	// Name identifies the token in logs, audit lines and events; never the token itself.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token, as `vigil token new` prints it.
	SHA256 string `yaml:"sha256"`
	// SHA256File is a file holding the hex SHA-256 (sha256sum output works), instead of SHA256.
	SHA256File string `yaml:"sha256_file"`
	// Scopes are what the token may do: read, write, admin.
	Scopes []Scope `yaml:"scopes"`
}

// TLSConfig configures transport security for the admin listener.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires every client to present a certificate signed by one of its CAs.
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether TLS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// RateLimitConfig is a token bucket per client: per token name for requests
// with a valid token, per source address (IPv6 by /64) for the rest.
type RateLimitConfig struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	// MaxClients caps the clients tracked at once; past it, new clients share one bucket.
	MaxClients int `yaml:"max_clients"`
}

// TimeoutsConfig holds the HTTP server's timeouts.
type TimeoutsConfig struct {
	ReadHeader time.Duration `yaml:"read_header"`
	Read       time.Duration `yaml:"read"`
	Write      time.Duration `yaml:"write"`
	Idle       time.Duration `yaml:"idle"`
	// Shutdown bounds how long Serve waits for requests in flight when its context ends.
	Shutdown time.Duration `yaml:"shutdown"`
}

// DefaultConfig returns the admin defaults: no tokens (every API call is
// refused until one is configured), open /metrics, no TLS, 10 requests/s
// with a burst of 20 per client, 64 KiB bodies, and conservative timeouts.
func DefaultConfig() Config {
	return Config{
		RateLimit: RateLimitConfig{
			RequestsPerSecond: 10,
			Burst:             20,
			MaxClients:        10000,
		},
		MaxBodyBytes:   64 << 10,
		MaxHeaderBytes: 16 << 10,
		Timeouts: TimeoutsConfig{
			ReadHeader: 5 * time.Second,
			Read:       10 * time.Second,
			Write:      30 * time.Second,
			Idle:       60 * time.Second,
			Shutdown:   10 * time.Second,
		},
	}
}

// Validate reports the first problem in c, naming the key and how to fix
// it. It does not read files; Check, New and Reload do.
func (c Config) Validate() error {
	names := map[string]bool{}
	hashes := map[string]string{}
	for i, t := range c.Tokens {
		if err := t.validate(); err != nil {
			return fmt.Errorf("admin.tokens[%d]: %w", i, err)
		}
		if names[t.Name] {
			return fmt.Errorf("admin.tokens[%d]: the name %q is used twice; give each token its own name", i, t.Name)
		}
		names[t.Name] = true
		if t.SHA256 != "" {
			if other, ok := hashes[t.SHA256]; ok {
				return fmt.Errorf("admin.tokens[%d] (%s): same sha256 as %s; generate a separate token with 'vigil token new'", i, t.Name, other)
			}
			hashes[t.SHA256] = t.Name
		}
	}
	if err := c.TLS.validate(); err != nil {
		return fmt.Errorf("admin.tls: %w", err)
	}
	if err := c.RateLimit.validate(); err != nil {
		return fmt.Errorf("admin.rate_limit: %w", err)
	}
	if c.MaxBodyBytes < 1 {
		return errors.New("admin.max_body_bytes: must be at least 1; the default is 65536")
	}
	if c.MaxHeaderBytes < 1024 {
		return errors.New("admin.max_header_bytes: must be at least 1024; the default is 16384")
	}
	return c.Timeouts.validate()
}

var (
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidateTokenName reports whether name can name a token: 1-64 letters,
// digits, '.', '_' or '-', starting with a letter or digit. Token names reach
// logs, audit lines and events, so they are kept plain.
func ValidateTokenName(name string) error {
	if !tokenNameRE.MatchString(name) {
		return fmt.Errorf("token name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func (t TokenConfig) validate() error {
	if err := ValidateTokenName(t.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	switch {
	case t.SHA256 != "" && t.SHA256File != "":
		return fmt.Errorf("%s: sha256 and sha256_file are both set; keep one", t.Name)
	case t.SHA256 == "" && t.SHA256File == "":
		return fmt.Errorf("%s: set sha256 (or sha256_file) to the hash 'vigil token new' printed", t.Name)
	case strings.HasPrefix(t.SHA256, "<"):
		return fmt.Errorf("%s: sha256 is still the documentation's placeholder; run 'vigil token new --name %s --scopes read' and put the sha256 it prints here", t.Name, t.Name)
	case t.SHA256 != "" && !sha256HexRE.MatchString(t.SHA256):
		return fmt.Errorf("%s: sha256 must be 64 lower-case hex digits (the SHA-256 of the token, not the token itself)", t.Name)
	}
	if err := weakHashError(t.Name, t.SHA256); err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	if len(t.Scopes) == 0 {
		return fmt.Errorf("%s: scopes is empty; give at least one of read, write, admin", t.Name)
	}
	for i, s := range t.Scopes {
		if !s.valid() {
			return fmt.Errorf("%s: scopes[%d]: unknown scope %q; the scopes are read, write, admin", t.Name, i, s)
		}
		if slices.Contains(t.Scopes[:i], s) {
			return fmt.Errorf("%s: scope %q is listed twice", t.Name, s)
		}
	}
	return nil
}

func (c TLSConfig) validate() error {
	if !c.Enabled() {
		if c.ClientCAFile != "" || c.MinVersion != "" {
			return errors.New("client_ca_file and min_version need cert_file and key_file; set those to serve TLS")
		}
		return nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return errors.New("cert_file and key_file must be set together")
	}
	if _, err := c.minVersion(); err != nil {
		return err
	}
	return nil
}

func (c TLSConfig) minVersion() (uint16, error) {
	switch c.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("min_version %q: use \"1.2\" or \"1.3\"; older versions are not offered", c.MinVersion)
}

func (c RateLimitConfig) validate() error {
	switch {
	case !(c.RequestsPerSecond > 0):
		return errors.New("requests_per_second must be above 0; the default is 10")
	case c.Burst < 1:
		return errors.New("burst must be at least 1; the default is 20")
	case c.MaxClients < 1:
		return errors.New("max_clients must be at least 1; the default is 10000")
	}
	return nil
}

func (c TimeoutsConfig) validate() error {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"read_header", c.ReadHeader}, {"read", c.Read}, {"write", c.Write}, {"idle", c.Idle}, {"shutdown", c.Shutdown},
	} {
		if d.v <= 0 {
			return fmt.Errorf("admin.timeouts.%s: must be a positive duration such as \"10s\"; unbounded timeouts let slow clients hold connections", d.key)
		}
	}
	if c.ReadHeader > c.Read {
		return errors.New("admin.timeouts.read_header: must not exceed admin.timeouts.read")
	}
	return nil
}
