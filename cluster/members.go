package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/natsconn"
)

// MembersBucket is the KV bucket of the member table.
const MembersBucket = "VIGIL_MEMBERS"

// Roles a member reports.
const (
	RoleActive  = "active"
	RoleStandby = "standby"
)

// Member is one instance's row in the member table.
type Member struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
	// Since is when the member took its role.
	Since time.Time `json:"since"`
	// Seen is the member's last heartbeat.
	Seen time.Time `json:"seen"`
	// Applied is the stream sequence of the last event message the
	// member's engine applied; Lag is how many the active member was
	// delivered beyond it (a standby's distance from a takeover).
	Applied   uint64 `json:"applied"`
	Lag       uint64 `json:"lag"`
	Handovers int    `json:"handovers"`
	// Config is the hash of the member's config file (vigil_config_info),
	// which may differ between members by their name or host-specific
	// paths. Rules is the digest of its rule set in force
	// (vigil_detection_rules_info) and Notify that of its notification
	// settings (receivers, routes, delivery): members whose Rules or
	// Notify differ detect or deliver differently, and a takeover changes
	// what Vigil does.
	Config string `json:"config,omitempty"`
	Rules  string `json:"rules,omitempty"`
	Notify string `json:"notify,omitempty"`
}

// Table keeps this member's row in MembersBucket fresh and reads the
// others'. A row not refreshed for three heartbeats expires with the
// bucket's TTL: the member is gone.
type Table struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	every time.Duration
	clock clock.Clock

	mu     sync.Mutex
	self   Member
	differ []string // members whose rules or notification settings differ, at the last heartbeat

	metrics *Metrics
}

// Progress reports where a member's engine is: the last message it applied
// and how far behind the active member's deliveries that is.
type Progress func() (applied, lag uint64)

// NewTable creates or opens the member bucket (with replicas) and returns
// the table of member name. Rows expire after three heartbeats of every.
func NewTable(ctx context.Context, js jetstream.JetStream, name, version string, every time.Duration, replicas int, clk clock.Clock, log *slog.Logger, m *Metrics) (*Table, error) {
	kv, err := natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      MembersBucket,
		Description: "Vigil cluster members: one row per instance, refreshed every heartbeat",
		History:     1,
		TTL:         3 * every,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", MembersBucket, err)
	}
	t := clk.Now()
	return &Table{kv: kv, log: log, every: every, clock: clk, metrics: m,
		self: Member{Name: name, Role: RoleStandby, Version: version, Started: t, Since: t}}, nil
}

// SetRole records that this member took role.
func (t *Table) SetRole(role string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.self.Role == role {
		return
	}
	t.self.Role, t.self.Since = role, t.clock.Now()
	if role == RoleActive {
		t.self.Handovers++
	}
}

// SetConfig records, for the next heartbeat, the hash of this member's
// config file and the digests of its rule set and notification settings in
// force.
func (t *Table) SetConfig(config, rules, notify string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.self.Config, t.self.Rules, t.self.Notify = config, rules, notify
}

// Self returns this member's row as last written.
func (t *Table) Self() Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self
}

// Run writes this member's row now and every heartbeat, with progress's
// figures, until ctx is done, then deletes it (the member left).
func (t *Table) Run(ctx context.Context, progress Progress) {
	ticker, tick := t.clock.NewTicker(t.every)
	defer ticker.Stop()
	for {
		t.beat(ctx, progress)
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = t.kv.Delete(dctx, t.Self().Name)
			cancel()
			return
		case <-tick:
		}
	}
}

func (t *Table) beat(ctx context.Context, progress Progress) {
	ctx, cancel := context.WithTimeout(ctx, t.every)
	defer cancel()
	applied, lag := progress()
	t.mu.Lock()
	t.self.Seen, t.self.Applied, t.self.Lag = t.clock.Now(), applied, lag
	row := t.self
	t.mu.Unlock()
	data, err := json.Marshal(row)
	if err == nil {
		_, err = t.kv.Put(ctx, row.Name, data)
	}
	if err != nil && ctx.Err() == nil {
		t.log.Warn("cluster member row not written; retrying at the next heartbeat", "err", err, "member", row.Name)
	}
	t.metrics.lag.Set(float64(lag))
	if ms, err := t.Members(ctx); err == nil {
		t.metrics.members.Set(float64(len(ms)))
		t.compare(row, ms)
	}
}

// compare counts the members whose rule set or notification settings
// differ from this one's, and says so in the log when which ones changes.
func (t *Table) compare(self Member, ms []Member) {
	var differ []string
	for _, m := range ms {
		if m.Name == self.Name || m.Rules == "" || self.Rules == "" {
			continue
		}
		if m.Rules != self.Rules || m.Notify != self.Notify {
			differ = append(differ, m.Name)
		}
	}
	t.metrics.differ.Set(float64(len(differ)))
	t.mu.Lock()
	changed := !slices.Equal(differ, t.differ)
	t.differ = differ
	t.mu.Unlock()
	switch {
	case changed && len(differ) > 0:
		t.log.Warn("cluster members run different rules or notification settings than this one: a takeover would change what Vigil detects or whom it tells; give every member the same files and reload them (POST /api/v1/cluster/reload)",
			"member", self.Name, "rules", self.Rules, "notify", self.Notify, "differing", differ)
	case changed:
		t.log.Info("cluster members run the same rules and notification settings again", "member", self.Name)
	}
}

// Members returns the live members, by name.
func (t *Table) Members(ctx context.Context) ([]Member, error) {
	keys, err := t.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cluster members: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	var out []Member
	for k := range keys.Keys() {
		e, err := t.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read cluster member %s: %w", k, err)
		}
		var m Member
		if json.Unmarshal(e.Value(), &m) == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Metrics are the cluster's metrics.
type Metrics struct {
	Active    prometheus.Gauge
	members   prometheus.Gauge
	lag       prometheus.Gauge
	Handovers prometheus.Counter
	Demotions prometheus.Counter
	Takeover  prometheus.Histogram
	Fenced    prometheus.Counter
	Wakes     prometheus.Counter
	differ    prometheus.Gauge
}

// NewMetrics registers the cluster metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_active",
			Help: "1 while this member is the active one (pinned on the events consumer), 0 while it is a standby."}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_members",
			Help: "Members in the member table at the last heartbeat, this one included."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_standby_lag_messages",
			Help: "Event messages delivered to the active member that this member's engine has not applied yet (0 on the active member)."}),
		Handovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_cluster_handovers_total",
			Help: "Times this member became the active one."}),
		Demotions: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_cluster_demotions_total",
			Help: "Times this member stopped being the active one: another member was pinned, it stopped, or it bound to the events consumer again."}),
		Takeover: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_cluster_takeover_seconds",
			Help:    "Time from being pinned to processing live events: catching up with what the previous active member was delivered.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		Fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_cluster_fenced_transitions_total",
			Help: "Alert transitions not announced because this member had lost its pin (the active member announces them)."}),
		Wakes: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_cluster_wakes_total",
			Help: "Wake-up messages this member published because no member held the pin (a quiet stream at the start, or after the active member stopped)."}),
		differ: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_cluster_members_differing",
			Help: "Other members whose rule set or notification settings differ from this member's, at the last heartbeat."}),
	}
	if reg != nil {
		reg.MustRegister(m.Active, m.members, m.lag, m.Handovers, m.Demotions, m.Takeover, m.Fenced, m.Wakes, m.differ)
	}
	return m
}
