package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/daemon"
)

// daemonFlags are the flags of `vigil run`; each overrides its config key
// when given.
type daemonFlags struct {
	configPath string
	listen     string
	natsURL    string
	natsListen string
	dataDir    string
	logLevel   string
	rulesDir   string
}

func (f *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "YAML config `file` (see README: Configuration)")
	fs.StringVar(&f.listen, "listen", "", "admin/metrics HTTP `address` (config: listen; default 127.0.0.1:9750)")
	fs.StringVar(&f.natsURL, "nats-url", "", "external NATS `url`; empty starts the embedded server (config: nats.url)")
	fs.StringVar(&f.natsListen, "nats-listen", "", "embedded NATS client `address` (config: nats.listen; default 127.0.0.1:4222)")
	fs.StringVar(&f.dataDir, "data-dir", "", "`directory` for the embedded NATS store and state (config: data_dir; default ./vigil-data)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (config: log.level; default info)")
	fs.StringVar(&f.rulesDir, "rules", "", "rule `directory` replacing the built-in rules (config: detect.rules)")
}

// read reads the config file (or the defaults), applies the flags given and
// validates the result.
func (f *daemonFlags) read() (config.Config, []byte, error) {
	cfg, raw := config.Default(), []byte(nil)
	if f.configPath != "" {
		var err error
		if cfg, raw, err = config.Load(f.configPath); err != nil {
			return config.Config{}, nil, err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, f.listen)
	set(&cfg.NATS.URL, f.natsURL)
	set(&cfg.NATS.Listen, f.natsListen)
	set(&cfg.DataDir, f.dataDir)
	set(&cfg.Log.Level, f.logLevel)
	set(&cfg.Detect.Rules, f.rulesDir)
	// The hash covers the flags too: they change what runs.
	raw = append(raw, fmt.Sprintf("\n#flags %s %s %s %s %s", f.listen, f.natsURL, f.natsListen, f.dataDir, f.rulesDir)...)
	if err := cfg.Validate(); err != nil {
		return config.Config{}, nil, err
	}
	return cfg, raw, nil
}

// load is the daemon's Options.Load for reloads: check, with its warnings
// logged on log.
func (f *daemonFlags) load(log *slog.Logger) func() (config.Config, []byte, error) {
	return func() (config.Config, []byte, error) {
		c, err := f.check()
		if err != nil {
			return config.Config{}, nil, err
		}
		logWarnings(log, c.warnings)
		return c.cfg, c.raw, nil
	}
}

func logWarnings(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn("config warning", "problem", w)
	}
}

func runDaemon(ctx context.Context, s streams, args []string) int {
	fs := flag.NewFlagSet("vigil run", flag.ContinueOnError)
	fs.SetOutput(s.stderr)
	var f daemonFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := f.check()
	if err != nil {
		fmt.Fprintf(s.stderr, "vigil run: %v\n", err)
		return 1
	}
	log := newLogger(s.stderr, c.cfg.Log)
	logWarnings(log, c.warnings)
	d, err := daemon.New(ctx, c.cfg, daemon.Options{
		Logger: log, Stdout: s.stdout, Version: version, Commit: buildCommit(),
		RawConfig: c.raw, Load: f.load(log),
	})
	if err != nil {
		log.Error("vigil failed to start", "err", err)
		return 1
	}
	stopHUP := reloadOnHangup(ctx, d)
	defer stopHUP()
	if err := d.Run(ctx); err != nil {
		log.Error("vigil stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// reloadOnHangup reloads the daemon's config on each SIGHUP until the
// returned function is called.
func reloadOnHangup(ctx context.Context, d *daemon.Daemon) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = d.Reload(ctx) // logged and exported by Reload
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
