package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/vigil-sec/vigil/internal/secret"
)

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// Config is a webhook receiver's configuration:
//
//	webhook:
//	  url: https://siem.example.com/hooks/vigil
//	  secret: ${WEBHOOK_SECRET}   # or secret_file: /run/secrets/vigil-webhook
type Config struct {
	// URL receives a POST per notification. It is never logged.
	URL string `yaml:"url"`
	// Secret is the Standard Webhooks signing secret, "whsec_" followed by
	// base64 of 24 to 64 random bytes. Without one, requests are not signed.
	Secret     secret.Secret `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
}

// Validate checks the configuration; allowInline permits a secret written
// literally in the config file.
func (c *Config) Validate(allowInline bool) error {
	if err := checkURL(c.URL); err != nil {
		return err
	}
	if err := secret.CheckInline("secret", c.Secret, allowInline); err != nil {
		return err
	}
	_, err := c.signingKey()
	return err
}

// signingKey resolves the secret (or its file) and decodes it; nil without a
// secret.
func (c *Config) signingKey() ([]byte, error) {
	s, err := secret.Resolve("secret", c.Secret, c.SecretFile)
	if err != nil {
		return nil, err
	}
	if s.IsZero() {
		return nil, nil
	}
	return DecodeSecret(s.Value())
}

// DecodeSecret returns the key of a "whsec_<base64>" signing secret.
func DecodeSecret(s string) ([]byte, error) {
	const howto = `generate one with: echo "whsec_$(openssl rand -base64 32)"`
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("secret must start with %q; %s", SecretPrefix, howto)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("secret: the part after %q is not valid base64; %s", SecretPrefix, howto)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret: key is %d bytes, want 24 to 64; %s", len(key), howto)
	}
	return key, nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("url is required, e.g. url: https://siem.example.com/hooks/vigil")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Do not echo the URL: it may carry a token.
		return errors.New("url must be an absolute http:// or https:// URL")
	}
	return nil
}
