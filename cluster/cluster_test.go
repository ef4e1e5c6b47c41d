package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Enabled = true
	tests := []struct {
		name     string
		edit     func(*Config)
		external bool
		want     string // "" when valid
	}{
		{"off needs nothing", func(c *Config) { c.Enabled = false }, false, ""},
		{"on with an external NATS", func(*Config) {}, true, ""},
		{"on with the embedded NATS", func(*Config) {}, false, "set nats.url"},
		{"member name with a space", func(c *Config) { c.Member = "vigil 1" }, true, "cluster.member"},
		{"failover too quick", func(c *Config) { c.FailoverAfter = time.Second }, true, "between 2s and 5m0s"},
		{"failover too slow", func(c *Config) { c.FailoverAfter = time.Hour }, true, "between 2s and 5m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate(tc.external)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestPullExpiryKeepsThePin: an idle active member pulls again well before
// its pin would time out, at least twice per failover_after.
func TestPullExpiryKeepsThePin(t *testing.T) {
	for _, after := range []time.Duration{MinFailoverAfter, 10 * time.Second, MaxFailoverAfter} {
		c := Config{FailoverAfter: after}
		if e := c.PullExpiry(); e < time.Second || e > after/2 {
			t.Errorf("failover_after %s: pull expiry %s, want between 1s and %s", after, e, after/2)
		}
	}
}

func TestMemberName(t *testing.T) {
	if got := (Config{Member: "vigil-0"}).MemberName(); got != "vigil-0" {
		t.Errorf("MemberName = %q, want the configured name", got)
	}
	if got := (Config{}).MemberName(); !memberRE.MatchString(got) {
		t.Errorf("MemberName from the host name = %q, not a valid member name", got)
	}
}
