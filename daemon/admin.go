package daemon

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/cluster"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/notify"
)

// Gatherer returns everything /metrics serves: the daemon's registry and the
// current detection engine's.
func (d *Daemon) Gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{d.reg, d.detector}
}

func (d *Daemon) newAdmin(cfg config.Config) error {
	srv, err := admin.New(cfg.Admin, backend{d}, admin.Options{
		Logger:        d.log,
		Registerer:    d.reg,
		Gatherer:      d.Gatherer(),
		Ready:         d.Ready,
		Now:           d.clock.Now,
		OnAuthFailure: d.onAuthFailure,
		Privacy:       d.privacy,
	})
	if err != nil {
		return err // it names the admin.* key
	}
	d.admin = srv
	return nil
}

// onAuthFailure publishes a failed admin authentication as an ordinary
// event of service vigil-admin, so it is stored, counted and seen by the
// same detection rules as every other service. It never blocks a request.
func (d *Daemon) onAuthFailure(ev event.Event) {
	m := nats.NewMsg(ingest.SubjectPrefix + ev.Service)
	m.Data = ev.AppendJSON(nil)
	m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
	if err := d.nc.PublishMsg(m); err != nil {
		d.log.Warn("admin auth failure event not published", "err", err)
	}
}

// backend implements admin.Backend and admin.SilenceBackend for the daemon.
type backend struct{ d *Daemon }

// Alerts lists the firing alerts; their labels are pseudonymised by the
// engine already (see detector.build).
func (b backend) Alerts(context.Context) ([]detect.Alert, error) {
	return b.d.detector.engine().Firing(), nil
}

func (b backend) Rules(context.Context) ([]admin.RuleInfo, error) {
	stats := b.d.detector.engine().RuleStats()
	out := make([]admin.RuleInfo, len(stats))
	for i, s := range stats {
		out[i] = admin.RuleInfo{
			Name: s.Name, Kind: string(s.Kind), Severity: s.Severity, Category: s.Category,
			Description: s.Description, Evaluations: s.Evaluations, Firing: s.Firing,
		}
	}
	return out, nil
}

// Baselines lists the engine's baselines. The engine reports group labels
// as they are in its state, so they are pseudonymised here as the engine
// pseudonymises alert labels.
func (b backend) Baselines(context.Context) ([]detect.BaselineStat, error) {
	st := b.d.detector.state.Load()
	out := st.engine.Baselines()
	for i := range out {
		labels := make(map[string]string, len(out[i].Labels))
		for k, v := range out[i].Labels {
			labels[k] = st.privacy.Label(k, v)
		}
		out[i].Labels = labels
	}
	return out, nil
}

func (b backend) Reload(ctx context.Context) error {
	if err := b.d.Reload(ctx); err != nil {
		return admin.InvalidConfig(err)
	}
	return nil
}

func (b backend) ListSilences(ctx context.Context) ([]notify.Silence, error) {
	return b.d.notifier.n().ListSilences(ctx)
}

func (b backend) CreateSilence(ctx context.Context, s notify.Silence) (notify.Silence, error) {
	return b.d.notifier.n().CreateSilence(ctx, s)
}

func (b backend) ExpireSilence(ctx context.Context, id string) error {
	return b.d.notifier.n().ExpireSilence(ctx, id)
}

// Status is the body of GET /api/v1/status. It holds no secret.
type Status struct {
	Version    string       `json:"version"`
	Commit     string       `json:"commit"`
	StartedAt  time.Time    `json:"started_at"`
	Uptime     string       `json:"uptime"`
	ConfigHash string       `json:"config_hash"`
	Ready      bool         `json:"ready"`
	NotReady   string       `json:"not_ready_reason,omitempty"`
	NATS       NATSStatus   `json:"nats"`
	Stream     StreamStatus `json:"stream"`
	Detect     DetectStatus `json:"detect"`
	NotifyQ    uint64       `json:"notify_queue_depth"`
	// Cluster is set when cluster.enabled: this member and the member
	// table.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus describes this member's role and the live members.
type ClusterStatus struct {
	Member  string           `json:"member"`
	Role    string           `json:"role"`
	Since   time.Time        `json:"since"`
	Members []cluster.Member `json:"members"`
	Error   string           `json:"error,omitempty"`
}

// NATSStatus describes the NATS connection.
type NATSStatus struct {
	Embedded  bool   `json:"embedded"`
	Connected bool   `json:"connected"`
	State     string `json:"state"`
	URL       string `json:"url"`
}

// StreamStatus describes the event stream and Vigil's consumer on it.
type StreamStatus struct {
	Name            string `json:"name"`
	Messages        uint64 `json:"messages"`
	Bytes           uint64 `json:"bytes"`
	FirstSeq        uint64 `json:"first_seq"`
	LastSeq         uint64 `json:"last_seq"`
	Consumer        string `json:"consumer"`
	ConsumerPending uint64 `json:"consumer_pending"`
	AckPending      int    `json:"ack_pending"`
	Error           string `json:"error,omitempty"`
}

// DetectStatus describes the detection engine.
type DetectStatus struct {
	Rules         int       `json:"rules"`
	Firing        int       `json:"firing"`
	Watermark     time.Time `json:"watermark"`
	StateBytes    uint64    `json:"state_bytes"`
	StateCapacity uint64    `json:"state_capacity_bytes"`
	LateEvents    uint64    `json:"late_events"`
	// RulesDigest identifies the rule set in force; cluster members
	// should show the same.
	RulesDigest string        `json:"rules_digest"`
	LastRebuild RebuildStatus `json:"last_rebuild"`
}

func (b backend) Status(ctx context.Context) (any, error) {
	d := b.d
	d.mu.Lock()
	hash := d.hash
	d.mu.Unlock()
	now := d.clock.Now()
	st := Status{
		Version: d.opts.Version, Commit: d.opts.Commit, StartedAt: d.started,
		Uptime: now.Sub(d.started).Round(time.Second).String(), ConfigHash: hash,
		NATS: NATSStatus{Embedded: d.ns != nil, Connected: d.nc.IsConnected(), State: d.nc.Status().String(), URL: d.nc.ConnectedUrlRedacted()},
	}
	if err := d.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st.Stream = streamStatus(ictx, d.consumer)
	est := d.detector.state.Load()
	eng := est.engine
	es := eng.Stats()
	st.Detect = DetectStatus{
		Rules: len(eng.Rules()), Firing: len(eng.Firing()), Watermark: eng.Watermark(),
		StateBytes: es.StateBytes, StateCapacity: es.StateCapacity, LateEvents: es.Late,
		RulesDigest: est.rulesDigest(), LastRebuild: d.detector.metrics.last(),
	}
	if q, err := d.notifier.n().QueueDepth(ictx); err == nil {
		st.NotifyQ = q
	}
	if fo := d.failover; fo != nil {
		self := fo.table.Self()
		cs := &ClusterStatus{Member: self.Name, Role: self.Role, Since: self.Since}
		if ms, err := fo.table.Members(ictx); err == nil {
			cs.Members = ms
		} else {
			cs.Error = "member table unavailable: " + err.Error() + "; check the NATS connection (nats section above)"
		}
		st.Cluster = cs
	}
	return st, nil
}

func streamStatus(ctx context.Context, c *ingest.Consumer) StreamStatus {
	ss := StreamStatus{Name: ingest.EventsStream}
	si, ci, err := c.Info(ctx)
	if si != nil {
		ss.Messages, ss.Bytes = si.State.Msgs, si.State.Bytes
		ss.FirstSeq, ss.LastSeq = si.State.FirstSeq, si.State.LastSeq
	}
	if ci != nil {
		ss.Consumer, ss.ConsumerPending, ss.AckPending = ci.Name, ci.NumPending, ci.NumAckPending
	}
	if err != nil {
		ss.Error = "stream information unavailable"
	}
	return ss
}
