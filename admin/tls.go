package admin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// loadTLS reads the certificate, key and client CAs named by c and returns
// the server config for one certificate generation, with the leaf's expiry.
// Serve's listener hands this config to each new handshake, so Reload
// replaces certificates without closing the listener; connections already
// open keep the certificate they started with.
func loadTLS(c TLSConfig) (*tls.Config, time.Time, error) {
	minVersion, err := c.minVersion()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("admin.tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("admin.tls: load cert_file %s and key_file %s: %w; point cert_file at the PEM certificate "+
			"(its chain after it) and key_file at its PEM private key, both readable by Vigil's user, or remove admin.tls to serve plain HTTP on a loopback address",
			c.CertFile, c.KeyFile, err)
	}
	if cert.Leaf == nil {
		return nil, time.Time{}, errors.New("admin.tls: cert_file holds no certificate")
	}
	cfg := &tls.Config{
		MinVersion:   minVersion,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}
	if c.ClientCAFile != "" {
		pemBytes, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("admin.tls.client_ca_file: %w; point it at a PEM file, readable by Vigil's user, "+
				"of the CA certificates that sign client certificates, or remove it to accept clients without certificates", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, time.Time{}, fmt.Errorf("admin.tls.client_ca_file %s: no PEM certificate found; it must hold the CA certificates that sign client certificates", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, cert.Leaf.NotAfter, nil
}

// listenerTLS returns the config given to tls.NewListener: it only sets the
// floor and asks current for the config of the generation in force.
func listenerTLS(current func() *tls.Config) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := current()
			if c == nil {
				return nil, errors.New("admin TLS is not configured")
			}
			return c, nil
		},
	}
}
