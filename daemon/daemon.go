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
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/privacy"
)

// Options are the daemon's collaborators and build facts.
type Options struct {
	Logger    *slog.Logger
	Stdout    io.Writer        // where the log receiver writes; os.Stdout when nil
	Now       func() time.Time // wall clock; time.Now when nil
	Version   string
	Commit    string
	RawConfig []byte // the bytes the config came from, for its hash
	// Load re-reads the configuration (file and flags) for Reload.
	Load func() (config.Config, []byte, error)
}

// Daemon is one running Vigil.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	reg     *prometheus.Registry
	ns      *server.Server // nil with an external NATS
	nc      *nats.Conn
	js      jetstream.JetStream

	consumer *ingest.Consumer
	detector *detector
	notifier *notifierRunner
	privacy  *privacy.Pseudonymizer
	admin    *admin.Server
	ln       net.Listener

	reloadMu sync.Mutex // serialises Reload
	mu       sync.Mutex // guards cfg, hash, closed
	cfg      config.Config
	hash     string
	reloads  *reloadMetrics
	closed   bool
}

// New starts the embedded NATS server (unless nats.url is set), connects,
// declares the streams, compiles the rules and opens the admin listener, so
// that Addr and NATSURL are known when it returns. Nothing is consumed until
// Run.
func New(cfg config.Config, opts Options) (d *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	d = &Daemon{cfg: cfg, opts: opts, log: opts.Logger, started: opts.Now(), hash: config.Hash(opts.RawConfig)}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	d.reg = prometheus.NewRegistry()
	d.registerBaseMetrics()
	if err := d.connect(); err != nil {
		return nil, err
	}
	if d.privacy, err = privacy.New(cfg.Privacy); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.notifier, err = newNotifierRunner(ctx, d, cfg.Notify); err != nil {
		return nil, err
	}
	if d.detector, err = newDetector(d, cfg.Detect); err != nil {
		return nil, err
	}
	d.consumer, err = ingest.New(cfg.Ingest, d.nc, ingest.Options{
		Logger: d.log, Registerer: d.reg, Now: opts.Now, Replicas: cfg.NATS.Replicas,
	})
	if err != nil {
		return nil, err
	}
	if err := d.newAdmin(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	return o
}

func (d *Daemon) connect() error {
	url := ""
	if d.cfg.NATS.Embedded() {
		if err := os.MkdirAll(d.cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		ns, err := natsconn.StartEmbedded(d.cfg.NATS, d.cfg.DataDir, d.log)
		if err != nil {
			return err
		}
		d.ns = ns
		url = ns.ClientURL()
		d.log.Info("embedded nats started", "url", url, "store", d.cfg.DataDir)
	}
	nc, err := natsconn.Connect(d.cfg.NATS, url, d.log)
	if err != nil {
		return err
	}
	d.nc = nc
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
	d.reloads.set(d.hash, true, d.opts.Now())
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
	stopIntake() // the consumer finishes and acknowledges what it received
	wg.Wait()
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
	st := d.detector.state.Load()
	r, err := d.detector.rebuild(ctx, st)
	if err != nil {
		return fmt.Errorf("rebuild detection state: %w", err)
	}
	d.consumer.SetSink(st.engine)
	d.consumer.SkipReplayed(r)
	d.detector.announce(ctx, st)
	return nil
}
