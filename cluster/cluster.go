// Package cluster lets several Vigil instances, with the same config file
// and the same NATS cluster, keep detection running when one of them dies:
// one instance at a time is active (it consumes the events, detects,
// announces and delivers alerts), the others are warm standbys that follow
// the stream into their own engines without announcing anything, ready to
// take over within cluster.failover_after.
//
// The turn-taking is JetStream's own: the events consumer is a pull
// consumer with a priority group under the pinned_client policy, so the
// server delivers to one instance at a time and moves the pin to a waiting
// one when the pinned instance stops pulling for failover_after (a crash, a
// freeze, a lost connection) or its consumer's leader changes. No election
// of our own: being pinned is being active. This package holds the
// configuration and the member table, a KV bucket where every instance
// says, every few seconds, who it is and what it does; the daemon and
// ingest do the handover.
package cluster

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"
)

// Config is the cluster section of the daemon's configuration.
type Config struct {
	// Enabled runs this instance as a member: active or standby.
	Enabled bool `yaml:"enabled"`
	// Member names this instance in the member table; the host name when
	// empty. Names must be unique among the members.
	Member string `yaml:"member"`
	// FailoverAfter is how long the active member may stop pulling events
	// before a standby takes over: JetStream's pinned TTL.
	FailoverAfter time.Duration `yaml:"failover_after"`
}

// Heartbeat is how often a member writes its row in the member table;
// a row not refreshed for three heartbeats expires.
const Heartbeat = 2 * time.Second

// Limits on Config values.
const (
	MinFailoverAfter     = 2 * time.Second
	MaxFailoverAfter     = 5 * time.Minute
	defaultFailoverAfter = 10 * time.Second
)

var (
	memberRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	notMember = regexp.MustCompile(`[^A-Za-z0-9._-]`)
)

// DefaultConfig returns the defaults: not clustered, failover after 10s.
func DefaultConfig() Config {
	return Config{FailoverAfter: defaultFailoverAfter}
}

// Validate reports what is wrong with c and how to fix it. external says
// whether nats.url names an external NATS, which a cluster needs.
func (c Config) Validate(external bool) error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if !external {
		errs = append(errs, errors.New("cluster.enabled needs an external NATS shared by every member; set nats.url (the embedded server serves one instance)"))
	}
	if c.Member != "" && !memberRE.MatchString(c.Member) {
		errs = append(errs, fmt.Errorf("cluster.member %q: use letters, digits, '.', '_' and '-' (at most 63), or leave it empty for the host name", c.Member))
	}
	if c.FailoverAfter < MinFailoverAfter || c.FailoverAfter > MaxFailoverAfter {
		errs = append(errs, fmt.Errorf("cluster.failover_after is %s; set it between %s and %s (default %s)", c.FailoverAfter, MinFailoverAfter, MaxFailoverAfter, defaultFailoverAfter))
	}
	return errors.Join(errs...)
}

// MemberName returns the member's name: Member, or the host name made
// valid.
func (c Config) MemberName() string {
	if c.Member != "" {
		return c.Member
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "vigil"
	}
	name := notMember.ReplaceAllString(host, "-")
	if len(name) > 63 {
		name = name[:63]
	}
	if !memberRE.MatchString(name) {
		return "vigil"
	}
	return name
}

// PullExpiry is how long one pull request of a member waits: well under
// FailoverAfter, since only a pull refreshes the pin, so that an idle
// active member keeps it.
func (c Config) PullExpiry() time.Duration {
	return max(time.Second, c.FailoverAfter/4)
}
