package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-sec/vigil/config"
	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/internal/secret"
)

// natsPasswordEnv holds the NATS password of the client commands, so that it
// never appears on a command line.
const natsPasswordEnv = "VIGIL_NATS_PASSWORD"

// natsClientFlags are the connection flags of the commands that are NATS
// clients (simulate, deadletters). With --config they connect as the daemon
// with that config does; each other flag overrides its part.
type natsClientFlags struct {
	configPath   string
	url          string
	user         string
	passwordFile string
	creds        string
	nkey         string
	ca           string
}

func (f *natsClientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "connect as vigil run with this config `file` does (its nats: section)")
	fs.StringVar(&f.url, "nats-url", "", "NATS `url` (default nats://127.0.0.1:4222, or the --config's)")
	fs.StringVar(&f.user, "nats-user", "", "NATS `user`; the password comes from $"+natsPasswordEnv+" or --nats-password-file")
	fs.StringVar(&f.passwordFile, "nats-password-file", "", "`file` holding the NATS password")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials `file` (JWT and NKey)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS NKey seed `file`")
	fs.StringVar(&f.ca, "nats-ca", "", "CA certificate `file` for a tls:// server")
}

// connect opens a connection named name, failing at once (no retries) when
// NATS cannot be reached.
func (f *natsClientFlags) connect(name string) (*nats.Conn, error) {
	c, addr, err := f.config()
	if err != nil {
		return nil, err
	}
	c.Name = name
	nc, err := natsconn.Connect(c, addr, slog.New(slog.DiscardHandler),
		nats.RetryOnFailedConnect(false), nats.MaxReconnects(0), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w (at %s)", err, redactURL(addr))
	}
	return nc, nil
}

// config returns the connection settings and the URL to dial.
func (f *natsClientFlags) config() (natsconn.Config, string, error) {
	c := natsconn.DefaultConfig()
	if f.configPath != "" {
		var err error
		if c, err = config.LoadNATS(f.configPath); err != nil {
			return c, "", err
		}
	}
	addr := c.URL
	if c.Embedded() { // the daemon's embedded server, on its listen address
		host, port, _ := net.SplitHostPort(c.Listen)
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		addr = "nats://" + net.JoinHostPort(host, port)
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&addr, f.url)
	set(&c.CredsFile, f.creds)
	set(&c.NKeySeedFile, f.nkey)
	set(&c.TLS.CAFile, f.ca)
	if f.creds != "" {
		c.NKeySeedFile = ""
	}
	if f.nkey != "" {
		c.CredsFile = ""
	}
	if f.user != "" || f.passwordFile != "" {
		pw, err := f.password()
		if err != nil {
			return c, "", err
		}
		c.User, c.Password, c.PasswordFile = f.user, pw, ""
	}
	c.URL = addr // an external server as far as Validate is concerned
	// Inline passwords were judged by LoadNATS with the file's own setting.
	if err := c.Validate(true); err != nil {
		return c, "", err
	}
	return c, addr, c.Check()
}

func (f *natsClientFlags) password() (secret.Secret, error) {
	if f.passwordFile != "" {
		s, err := secret.FromFile(f.passwordFile)
		if err != nil {
			return s, fmt.Errorf("--nats-password-file: %w", err)
		}
		return s, nil
	}
	v, ok := os.LookupEnv(natsPasswordEnv)
	if !ok || v == "" {
		return secret.Secret{}, errors.New("--nats-user needs a password: set $" + natsPasswordEnv + " or give --nats-password-file (never on the command line)")
	}
	return secret.New(v, "env "+natsPasswordEnv), nil
}

// redactURL drops passwords from a comma-separated list of URLs, for
// messages.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
