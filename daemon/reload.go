package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/privacy"
)

// reloadMetrics export the outcome of the last config (re)load.
type reloadMetrics struct {
	success   prometheus.Gauge
	timestamp prometheus.Gauge
	info      *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_last_reload_successful", Help: "1 if the last config load or reload succeeded.",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_last_reload_success_timestamp_seconds", Help: "When the config was last loaded successfully.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_config_info", Help: "Hash of the config in force; always 1.",
		}, []string{"hash"}),
	}
	reg.MustRegister(m.success, m.timestamp, m.info)
	return m
}

func (m *reloadMetrics) set(hash string, ok bool, now time.Time) {
	if !ok {
		m.success.Set(0)
		return
	}
	m.success.Set(1)
	m.timestamp.Set(float64(now.Unix()))
	m.info.Reset()
	m.info.WithLabelValues(hash).Set(1)
}

// Reload re-reads the configuration through Options.Load, validates all of
// it, and applies it only if everything is valid and nothing changed that
// needs a restart. On any error the running config stays in force, the error
// says what to fix, and vigil_config_last_reload_successful drops to 0.
func (d *Daemon) Reload(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.reload(ctx)
	now := d.clock.Now()
	d.mu.Lock()
	d.reloads.set(d.hash, err == nil, now)
	hash := d.hash
	d.mu.Unlock()
	if err != nil {
		d.log.Error("config reload failed; keeping the running config", "err", err)
		return err
	}
	d.showConfig(hash)
	d.log.Info("config reloaded", "hash", hash)
	return nil
}

// showConfig tells the other cluster members, through this member's row,
// which config file (hash), rule set and notification settings this member
// runs.
func (d *Daemon) showConfig(hash string) {
	if d.failover == nil {
		return
	}
	d.mu.Lock()
	n := d.cfg.Notify
	d.mu.Unlock()
	d.failover.table.SetConfig(hash, d.detector.state.Load().rulesDigest(), notifyDigest(n))
}

// notifyDigest identifies notification settings: receivers (secrets as
// <secret>), routes and delivery settings. The paths of the files secrets
// are read from (secret_file, token_file, webhook_url_file) are left out:
// they may differ from host to host for the same settings.
func notifyDigest(n notify.Config) string {
	b, err := json.Marshal(n)
	var v any
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err == nil {
		b, err = json.Marshal(withoutFilePaths(v)) // maps marshal in key order
	}
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// withoutFilePaths drops, at every depth of a decoded JSON value, the
// object members whose name ends in "File".
func withoutFilePaths(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.HasSuffix(k, "File") {
				delete(x, k)
				continue
			}
			x[k] = withoutFilePaths(e)
		}
	case []any:
		for i, e := range x {
			x[i] = withoutFilePaths(e)
		}
	}
	return v
}

func (d *Daemon) reload(ctx context.Context) error {
	if d.opts.Load == nil {
		return fmt.Errorf("this daemon was started without a way to re-read its config")
	}
	cfg, raw, err := d.opts.Load()
	if err != nil {
		return err
	}
	if fixed := notReloadable(d.cfg, cfg); len(fixed) > 0 {
		return fmt.Errorf("reload cannot change %s; restart Vigil to apply them (nothing was changed)", strings.Join(fixed, ", "))
	}
	for _, w := range cfg.Ingest.Deprecations() {
		d.log.Warn("deprecated config key", "warning", w)
	}
	if err := d.applyReload(ctx, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg, d.hash = cfg, config.Hash(raw)
	d.mu.Unlock()
	return nil
}

// applyReload puts a validated config into force, all or nothing, as
// Alertmanager's reloader does: every part that can fail is prepared first,
// changing nothing others see, while the running ones keep working (the
// privacy key, a new detection engine, the notifier's routes, receivers and
// its plan of JetStream changes, the admin server's tokens and
// certificates). Then come the two steps that can fail and change state:
// the new engine's rebuild, which only the swap puts in force, and the
// notifier's JetStream changes (streams and consumers), which undo
// themselves if one fails; the latter runs inside the former, after the
// last replay and just before the engine is swapped in. Only then the other
// parts, which cannot fail, are put in force; the new notifier takes over
// the receivers' gauges only as it replaces the running one.
func (d *Daemon) applyReload(ctx context.Context, cfg config.Config) (err error) {
	p, err := privacy.New(cfg.Privacy)
	if err != nil {
		return err
	}
	eng, err := d.detector.prepare(cfg.Detect, p)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && eng != nil {
			eng.engine.Close()
		}
	}()
	prepared, err := d.notifier.prepare(ctx, cfg.Notify)
	if err != nil {
		return err
	}
	commitAdmin, err := d.admin.PrepareReload(cfg.Admin)
	if err != nil {
		return err
	}
	var n *notify.Notifier
	commitNotify := func(ctx context.Context) error {
		if prepared == nil {
			return nil
		}
		var err error
		if n, err = prepared.Commit(ctx); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		return nil
	}
	if eng != nil {
		err = d.detector.swap(ctx, eng, commitNotify)
	} else {
		err = commitNotify(ctx)
	}
	if err != nil {
		return err
	}
	commitAdmin()
	d.detector.setCheckpointEvery(cfg.Detect.CheckpointEvery)
	d.privacy.Use(p)
	if n != nil {
		d.notifier.swap(n, cfg.Notify)
	}
	if eng != nil {
		d.detector.announce(ctx, eng)
		d.log.Info("rules reloaded", "rules", len(eng.engine.Rules()))
	}
	return nil
}
