package alertmanager

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// DefaultFiringTTL is how far ahead a firing alert's endsAt is set.
const DefaultFiringTTL = 24 * time.Hour

// Config is an Alertmanager receiver's configuration:
//
//	alertmanager:
//	  urls: [http://am-0:9093, http://am-1:9093]
//	  firing_ttl: 24h
type Config struct {
	// URLs are Alertmanager base URLs; /api/v2/alerts is appended.
	URLs []string `yaml:"urls"`
	// FiringTTL is how long Alertmanager keeps a firing alert without news
	// from Vigil (each repeat notification extends it). Default 24h.
	FiringTTL time.Duration `yaml:"firing_ttl"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.URLs) == 0 {
		return errors.New("urls: list at least one Alertmanager, e.g. urls: [http://127.0.0.1:9093]")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("urls[%d]: want an absolute http:// or https:// base URL such as http://127.0.0.1:9093", i)
		}
	}
	if c.FiringTTL < 0 {
		return errors.New("firing_ttl must not be negative; leave it out for the 24h default")
	}
	return nil
}
