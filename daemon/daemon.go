// Package daemon wires Vigil's parts into one lifecycle (New, Run, Reload,
// Close): the embedded or external NATS connection, ingest, detection,
// notification delivery and the admin HTTP server. cmd/vigil parses flags and
// signals and calls it; tests start the whole daemon in-process through it.
package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/detect"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/clock"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/notify"
	"github.com/vigil-sec/vigil/privacy"
)

// Options are the daemon's collaborators and build facts.
type Options struct {
	Logger    *slog.Logger
	Stdout    io.Writer   // where the log receiver writes; os.Stdout when nil
	Clock     clock.Clock // the wall clock, its timers and tickers; clock.Real when nil
	Version   string
	Commit    string
	RawConfig []byte // the bytes the config came from, for its hash
	// Load re-reads the configuration (file and flags) for Reload.
	Load func() (config.Config, []byte, error)
}

// Daemon is one running Vigil.
type Daemon struct {
	opts    Options
	clock   clock.Clock
	log     *slog.Logger
	started time.Time
	reg     *prometheus.Registry
	ns      *server.Server // nil with an external NATS
	nc      *nats.Conn
	js      jetstream.JetStream

	consumer *ingest.Consumer
	detector *detector
	notifier *notifierRunner
	failover *failover // nil unless cluster.enabled
	// reloadRequests queues other members' cluster-wide reload requests
	// (serveReloads).
	reloadRequests chan *nats.Msg
	privacy        *privacy.Pseudonymizer // for log lines; alerts are pseudonymised by the engine
	admin          *admin.Server
	ln             net.Listener

	reloadMu sync.Mutex // serialises Reload
	mu       sync.Mutex // guards cfg, hash, closed
	cfg      config.Config
	hash     string
	reloads  *reloadMetrics
	closed   bool
}

// New opens the admin listener, starts the embedded NATS server (unless
// nats.url is set), connects, declares the streams, compiles the rules and
// builds the admin server, so that Addr and NATSURL are known when it
// returns. Nothing is consumed until Run. An external NATS server that does
// not answer yet is waited for (saying so in the log) until ctx is done.
// Every error says what is wrong and how to fix it; what New started is
// released.
func New(ctx context.Context, cfg config.Config, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	d := &Daemon{cfg: cfg, opts: opts, clock: opts.Clock, log: opts.Logger, started: opts.Clock.Now(), hash: config.Hash(opts.RawConfig)}
	if err := d.start(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// start does New's work; on error the caller closes d.
func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	d.reg = prometheus.NewRegistry()
	d.registerBaseMetrics()
	// The listener first: a busy or impossible address fails at once,
	// before NATS is started or waited for.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("the admin API cannot listen on %s: %w; free that address or choose another with --listen (config: listen)", cfg.Listen, err)
	}
	d.ln = ln
	if err := d.connect(ctx); err != nil {
		return err
	}
	if d.privacy, err = privacy.New(cfg.Privacy); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var member *failover
	iopts := ingest.Options{Logger: d.log, Registerer: d.reg, Clock: d.clock, Replicas: cfg.NATS.Replicas}
	nopts := notify.Options{Logger: d.log, Registerer: d.reg, Now: d.clock.Now, LogWriter: d.opts.Stdout, Replicas: cfg.NATS.Replicas}
	if cfg.Cluster.Enabled {
		member = newFailover(cfg.Cluster, d.clock, d.log, d.reg)
		iopts.Failover = member.ingest()
		nopts.MayDeliver = member.mayDeliver // a member that lost its pin delivers nothing
		// What a crashed member had taken (events, deliveries) comes back
		// to the next one once it takes over, not after the 30 s default:
		// ingest caps its consumer's ack_wait itself (Failover.After).
		nopts.AckWaitAtMost = cfg.Cluster.FailoverAfter
		for _, c := range []struct {
			key  string
			wait time.Duration
		}{{"ingest.ack_wait", cfg.Ingest.AckWait}, {"notify.ack_wait", cfg.Notify.Notify.AckWait}} {
			if c.wait > cfg.Cluster.FailoverAfter {
				d.log.Info(c.key+" is capped at cluster.failover_after on a cluster, so that what a crashed active member had taken comes to the next one as soon as it takes over",
					"ack_wait", c.wait, "failover_after", cfg.Cluster.FailoverAfter)
			}
		}
	}
	if d.notifier, err = newNotifierRunner(sctx, d.js, cfg.Notify, nopts); err != nil {
		return err
	}
	if d.consumer, err = ingest.New(cfg.Ingest, d.nc, iopts); err != nil {
		return err
	}
	deps := detectorDeps{clock: d.clock, log: d.log, metrics: newDetectionMetrics(d.reg), notifier: d.notifier, stream: d.consumer, member: member, tempDir: cfg.DataDir}
	cm := newCheckpointMetrics(d.reg)
	if cfg.Detect.CheckpointEvery != 0 {
		if deps.checkpoints, err = openCheckpoints(sctx, d.js, cfg.NATS.Replicas, cfg.DataDir, d.opts.Version, cm); err != nil {
			cm.unavailable.Set(1)
			d.log.Warn("detection state will not be checkpointed: a restart replays the rules' whole lookback", "err", err)
		}
	}
	if d.detector, err = newDetector(cfg.Detect, d.privacy, deps); err != nil {
		return err
	}
	d.notifier.useRules(func() []*detect.Rule { return d.detector.engine().Rules() })
	if member != nil {
		if err := member.join(sctx, d.js, d.opts.Version, cfg.NATS.Replicas, d.consumer, d.detector, d.notifier); err != nil {
			return err
		}
		d.failover = member
		d.notifier.hold(true) // until this member is active
		d.showConfig(d.hash)
	}
	for _, w := range cfg.Ingest.Deprecations() {
		d.log.Warn("deprecated config key", "warning", w)
	}
	return d.newAdmin(cfg)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = clock.Or(o.Clock)
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	return o
}

func (d *Daemon) connect(ctx context.Context) error {
	url := ""
	if d.cfg.NATS.Embedded() {
		if err := os.MkdirAll(d.cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("data_dir %s cannot be created: %w; choose a directory Vigil may write with --data-dir (config: data_dir)", d.cfg.DataDir, err)
		}
		ns, err := natsconn.StartEmbedded(d.cfg.NATS, d.cfg.DataDir, d.log)
		if err != nil {
			return err
		}
		d.ns = ns
		url = ns.ClientURL()
		d.log.Info("embedded nats started", "url", url, "store", d.cfg.DataDir)
	}
	var failure connectFailure
	nc, err := natsconn.Connect(d.cfg.NATS, url, d.log, nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { failure.set(err) }))
	if err != nil {
		return err
	}
	d.nc = nc
	if err := d.waitConnected(ctx, &failure); err != nil {
		return err
	}
	if d.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

func (d *Daemon) registerBaseMetrics() {
	d.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "Vigil's version, commit and Go version; always 1.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(d.opts.Version, d.opts.Commit, runtime.Version()).Set(1)
	d.reg.MustRegister(build)
	d.reloads = newReloadMetrics(d.reg)
	d.reloads.set(d.hash, true, d.clock.Now())
}

// Addr is the admin listener's address.
func (d *Daemon) Addr() net.Addr { return d.ln.Addr() }

// NATSURL is the client URL of the NATS server in use.
func (d *Daemon) NATSURL() string {
	if d.ns != nil {
		return d.ns.ClientURL()
	}
	return d.nc.ConnectedUrlRedacted()
}

// Registry is the daemon's metric registry (without the engine's metrics;
// see Gatherer).
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Ready returns nil when the daemon can do its job, or the reason it cannot.
func (d *Daemon) Ready() error { return d.consumer.Ready() }

// Run rebuilds detection state from the stream, then consumes events,
// delivers notifications and serves HTTP until ctx is done. It then drains
// in order: stop intake, stop detection, let deliveries in flight finish,
// close the HTTP server, and close NATS.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.warmUp(ctx); err != nil {
		d.Close()
		return err
	}
	httpErr := make(chan error, 1)
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	var httpWG sync.WaitGroup
	httpWG.Go(func() {
		if err := d.admin.Serve(httpCtx, d.ln); err != nil {
			httpErr <- err
		}
	})
	var wg sync.WaitGroup
	intakeCtx, stopIntake := context.WithCancel(ctx)
	wg.Go(func() { _ = d.consumer.Run(intakeCtx) })
	wg.Go(func() { d.detector.tick(intakeCtx) })
	wg.Go(func() { d.detector.checkpointLoop(intakeCtx) })
	var stopReloads func()
	if d.failover != nil {
		wg.Go(func() { d.failover.run(intakeCtx) })
		var err error
		if stopReloads, err = d.serveReloads(); err != nil {
			d.log.Warn("this member will not answer cluster-wide reloads; reload it on its own (SIGHUP)", "err", err)
		}
	}
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	d.notifier.start(notifyCtx)
	d.log.Info("vigil running", "listen", d.ln.Addr().String(), "nats", d.NATSURL(), "version", d.opts.Version)

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("admin http server: %w", err)
	}
	d.log.Info("vigil stopping")
	if stopReloads != nil {
		stopReloads() // a member stopping reloads nothing more
	}
	// Stopping intake ends a member's pin: whether it was the active one
	// (whose checkpoint is the one to keep) is known only before.
	applying := d.failover == nil || d.failover.isActive()
	stopIntake() // the consumer finishes and acknowledges what it received
	wg.Wait()
	if applying && d.nc.IsConnected() {
		d.detector.lastCheckpoint() // the next start replays only what comes after
	}
	stopNotify() // attempts in flight finish; the rest stays queued in JetStream
	d.notifier.wait()
	stopHTTP()
	httpWG.Wait()
	d.Close()
	d.log.Info("vigil stopped")
	return err
}

// Close releases the engine, NATS and the listener. Run calls it; call it
// directly only when Run was never called.
func (d *Daemon) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.ln != nil {
		_ = d.ln.Close()
	}
	if d.detector != nil {
		d.detector.close()
	}
	if d.nc != nil {
		d.nc.SetDisconnectErrHandler(nil) // closing on purpose: nothing to warn about
		_ = d.nc.Drain()
		d.nc.Close()
	}
	if d.ns != nil {
		d.ns.Shutdown()
		d.ns.WaitForShutdown()
	}
}

// warmUp rebuilds detection windows and alert state before live intake.
func (d *Daemon) warmUp(ctx context.Context) error {
	st, r, err := d.detector.warmStart(ctx)
	if err != nil {
		return fmt.Errorf("rebuild detection state: %w", err)
	}
	d.consumer.SetSink(st.engine)
	if d.failover != nil {
		d.failover.start(r) // a standby until JetStream pins this member
		return nil
	}
	d.consumer.SkipReplayed(r)
	d.detector.replayed = r
	d.detector.announce(ctx, st)
	return nil
}
