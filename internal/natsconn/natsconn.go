// Package natsconn starts Vigil's embedded NATS server and opens client
// connections to it or to an external NATS deployment, with the TLS and
// credential options an operator configures. It owns no streams: the packages
// that use JetStream declare their own.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/internal/secret"
)

// Config is the `nats:` section of the daemon config.
type Config struct {
	// URL of an external NATS server or cluster (comma-separated). Empty
	// starts the embedded server.
	URL string `yaml:"url"`
	// Listen is the embedded server's client address.
	Listen string `yaml:"listen"`
	// Replicas is the JetStream replica count for Vigil's streams (3 on a cluster).
	Replicas int `yaml:"replicas"`
	// Name is the client connection name shown in NATS monitoring.
	Name string `yaml:"name"`

	CredsFile    string        `yaml:"creds_file"`     // JWT + NKey creds file
	NKeySeedFile string        `yaml:"nkey_seed_file"` // NKey seed file
	User         string        `yaml:"user"`
	Password     secret.Secret `yaml:"password"` // "${ENV}"; or password_file
	PasswordFile string        `yaml:"password_file"`
	TLS          TLSConfig     `yaml:"tls"`
}

// TLSConfig configures TLS to an external NATS server.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultListen is the embedded server's default client address.
const DefaultListen = "127.0.0.1:4222"

// DefaultConfig returns the defaults: embedded server on 127.0.0.1:4222.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, Replicas: 1, Name: "vigil"}
}

// Embedded reports whether the config asks for the embedded server.
func (c Config) Embedded() bool { return c.URL == "" }

// Validate checks the config and resolves password_file.
func (c *Config) Validate(allowInlineSecrets bool) error {
	if c.Embedded() {
		if _, _, err := splitHostPort(c.Listen); err != nil {
			return fmt.Errorf("nats.listen %q: %w; use host:port such as %s", c.Listen, err, DefaultListen)
		}
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("nats.replicas is %d; use 1 for a single server or 3 on a cluster (at most 5)", c.Replicas)
	}
	if c.Embedded() && c.Replicas != 1 {
		return errors.New("nats.replicas must be 1 with the embedded server; set nats.url to use a cluster")
	}
	if c.CredsFile != "" && c.NKeySeedFile != "" {
		return errors.New("nats.creds_file and nats.nkey_seed_file are both set; keep one")
	}
	pw, err := secret.Resolve("nats.password", c.Password, c.PasswordFile)
	if err != nil {
		return err
	}
	if err := secret.CheckInline("nats.password", pw, allowInlineSecrets); err != nil {
		return err
	}
	c.Password, c.PasswordFile = pw, ""
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("nats.tls.cert_file and nats.tls.key_file go together; set both or neither")
	}
	for _, o := range c.options() {
		if o.file == "" {
			continue
		}
		if _, err := os.Stat(o.file); err != nil {
			return fmt.Errorf("%s: %w", o.key, err)
		}
	}
	return nil
}

// Check does what Connect does before it dials, without dialling: it parses
// the server URLs and reads the creds, NKey seed and TLS files, so that a
// file that cannot be used is reported with its key. Call it after Validate.
func (c Config) Check() error {
	if !c.Embedded() {
		for u := range strings.SplitSeq(c.URL, ",") {
			if err := checkURL(strings.TrimSpace(u)); err != nil {
				return fmt.Errorf("nats.url: %w", err)
			}
		}
	}
	o := nats.GetDefaultOptions()
	for _, opt := range c.authOptions() {
		if err := opt(&o); err != nil {
			return err
		}
	}
	if o.UserJWT != nil {
		if _, err := o.UserJWT(); err != nil {
			return fmt.Errorf("nats.creds_file: %w", err)
		}
	}
	if o.SignatureCB != nil {
		if _, err := o.SignatureCB([]byte("vigil config check")); err != nil {
			return fmt.Errorf("nats.creds_file: %w", err)
		}
	}
	return nil
}

func checkURL(raw string) error {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL; write it as nats://host:4222 (or tls://, ws://, wss://)", raw)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%s: unknown scheme %q; use nats://, tls://, ws:// or wss://", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s has no host; write it as nats://host:4222", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: port %q is not a port number (1-65535)", u.Redacted(), p)
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// StartEmbedded starts an in-process NATS server with JetStream, storing
// under dataDir/nats, and waits until it accepts connections.
func StartEmbedded(c Config, dataDir string, log *slog.Logger) (*server.Server, error) {
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats listen address %q: %w", c.Listen, err)
	}
	if port > 0 {
		// Fail fast with a clear message instead of waiting for a server
		// that cannot bind.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("embedded nats cannot listen on %s: %w; stop what uses it or set --nats-listen", c.Listen, err)
		}
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName: "vigil-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.SetLoggerV2(slogAdapter{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats did not start listening on %s within 30s; is the port in use? set --nats-listen", c.Listen)
	}
	return ns, nil
}

// Connect opens a client connection with reconnects forever; handlers report
// state changes on log. url overrides c.URL (used for the embedded server).
func Connect(c Config, url string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if url == "" {
		url = c.URL
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				// Close or the end of a Drain: a deliberate close,
				// not a fault.
				log.Debug("nats connection closed")
				return
			}
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedServerId())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error", "err", err)
		}),
	}
	opts = append(opts, c.authOptions()...)
	opts = append(opts, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

func (c Config) authOptions() []nats.Option {
	var opts []nats.Option
	for _, o := range c.options() {
		if o.opt != nil {
			opts = append(opts, o.opt)
		}
	}
	return opts
}

// keyedOption is a client option (nil for a file another option reads),
// with the config key it comes from and the file it reads, if any. The
// option's errors name the key.
type keyedOption struct {
	key, file string
	opt       nats.Option
}

func keyed(key, file string, opt func() (nats.Option, error)) keyedOption {
	return keyedOption{key: key, file: file, opt: func(o *nats.Options) error {
		inner, err := opt()
		if err == nil {
			err = inner(o)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}}
}

func always(o nats.Option) func() (nats.Option, error) {
	return func() (nats.Option, error) { return o, nil }
}

// options lists the authentication and TLS options c asks for.
func (c Config) options() []keyedOption {
	var opts []keyedOption
	switch {
	case c.CredsFile != "":
		opts = append(opts, keyed("nats.creds_file", c.CredsFile, always(nats.UserCredentials(c.CredsFile))))
	case c.NKeySeedFile != "":
		opts = append(opts, keyed("nats.nkey_seed_file", c.NKeySeedFile,
			func() (nats.Option, error) { return nats.NkeyOptionFromSeed(c.NKeySeedFile) }))
	}
	if c.User != "" {
		opts = append(opts, keyed("nats.user", "", always(nats.UserInfo(c.User, c.Password.Value()))))
	}
	if c.TLS.CAFile != "" {
		opts = append(opts, keyed("nats.tls.ca_file", c.TLS.CAFile, always(nats.RootCAs(c.TLS.CAFile))))
	}
	if c.TLS.CertFile != "" {
		opts = append(opts, keyed("nats.tls.cert_file", c.TLS.CertFile, always(nats.ClientCert(c.TLS.CertFile, c.TLS.KeyFile))),
			keyedOption{key: "nats.tls.key_file", file: c.TLS.KeyFile})
	}
	return opts
}

// slogAdapter routes the embedded server's log lines to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) {
	a.log.Debug("nats server", "msg", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Warnf(format string, v ...any) {
	a.log.Warn("nats server", "msg", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.log.Error("nats server", "msg", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Errorf(format string, v ...any) {
	a.log.Error("nats server", "msg", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Debugf(format string, v ...any) {
	a.log.Debug("nats server", "msg", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Tracef(format string, v ...any) {}
