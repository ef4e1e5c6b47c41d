package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// testPKI is a CA with server and client certificates, written as PEM files.
type testPKI struct {
	dir      string
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caPool   *x509.CertPool
	caFile   string
	clientOK tls.Certificate // signed by the CA
	clientNo tls.Certificate // self-signed, not trusted
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(p.ca)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	p.clientOK = p.issue(t, "oncall-laptop", x509.ExtKeyUsageClientAuth, p.ca, p.caKey)
	p.clientNo = p.issue(t, "intruder", x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for cn, signed by parent (self-signed when nil).
func (p *testPKI) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key := newKey(t)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serverFiles writes a CA-signed server certificate for cn and returns its paths.
func (p *testPKI) serverFiles(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	c := p.issue(t, cn, x509.ExtKeyUsageServerAuth, p.ca, p.caKey)
	certFile, keyFile = filepath.Join(p.dir, cn+".pem"), filepath.Join(p.dir, cn+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", c.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", der)
	return certFile, keyFile
}

// serveTLS runs Serve on a loopback listener until the test ends.
func serveTLS(t *testing.T, cfg Config) (*Server, string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(cfg, &testBackend{}, Options{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), reg
}

func tlsGet(addr string, cfg *tls.Config, bearerToken string) (*http.Response, error) {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+addr+"/api/v1/status", nil)
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	toks, cfgs := testTokens(t)
	cfg := generousConfig(cfgs)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = pki.serverFiles(t, "vigil-one")
	_, addr, reg := serveTLS(t, cfg)

	tests := []struct {
		name    string
		client  *tls.Config
		wantErr string // "" means the request succeeds
	}{
		{"tls 1.2", &tls.Config{RootCAs: pki.caPool, MaxVersion: tls.VersionTLS12}, ""},
		{"tls 1.3", &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS13}, ""},
		{"tls 1.1 refused", &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, "remote error: tls: protocol version not supported"},
		{"tls 1.0 refused", &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, "remote error: tls: protocol version not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tlsGet(addr, tt.client, toks["read"])
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			checkSecurityHeaders(t, resp, true)
		})
	}
	t.Run("failed handshakes are counted", func(t *testing.T) {
		testkit.WaitUntil(t, 5*time.Second, "two handshake errors", func() bool {
			return counterValue(t, reg, "vigil_admin_tls_handshake_errors_total", nil) >= 2
		})
	})
	t.Run("certificate expiry exported", func(t *testing.T) {
		if v := counterValue(t, reg, "vigil_admin_tls_certificate_expiry_timestamp_seconds", nil); v < float64(time.Now().Unix()) {
			t.Fatalf("expiry = %v", v)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	pki := newPKI(t)
	toks, cfgs := testTokens(t)
	cfg := generousConfig(cfgs)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = pki.serverFiles(t, "vigil-one")
	cfg.TLS.ClientCAFile = pki.caFile
	_, addr, _ := serveTLS(t, cfg)

	tests := []struct {
		name   string
		certs  []tls.Certificate
		token  string
		status int // 0: the connection must fail
	}{
		{"no client certificate", nil, toks["read"], 0},
		{"untrusted client certificate", []tls.Certificate{pki.clientNo}, toks["read"], 0},
		{"trusted certificate and token", []tls.Certificate{pki.clientOK}, toks["read"], 200},
		{"trusted certificate still needs a token", []tls.Certificate{pki.clientOK}, "", 401},
	}
	for _, tt := range tests {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(tt.name+" "+tls.VersionName(v), func(t *testing.T) {
				resp, err := tlsGet(addr, &tls.Config{RootCAs: pki.caPool, Certificates: tt.certs, MinVersion: v, MaxVersion: v}, tt.token)
				if tt.status == 0 {
					if err == nil {
						t.Fatalf("request succeeded with status %d", resp.StatusCode)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
				}
			})
		}
	}
}

func TestCertificateReload(t *testing.T) {
	pki := newPKI(t)
	toks, cfgs := testTokens(t)
	cfg := generousConfig(cfgs)
	cfg.TLS.CertFile, cfg.TLS.KeyFile = pki.serverFiles(t, "vigil-one")
	s, addr, _ := serveTLS(t, cfg)

	servedCN := func(t *testing.T) string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.caPool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	badCert := filepath.Join(pki.dir, "garbage.pem")
	if err := os.WriteFile(badCert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	twoCert, twoKey := pki.serverFiles(t, "vigil-two")

	tests := []struct {
		name    string
		mod     func(c *Config)
		wantErr string
		wantCN  string
	}{
		{"unreadable certificate keeps the old one", func(c *Config) { c.TLS.CertFile = badCert }, "admin.tls", "vigil-one"},
		{"turning TLS off is refused", func(c *Config) { c.TLS = TLSConfig{} }, "cannot be turned on or off", "vigil-one"},
		{"timeouts are fixed while serving", func(c *Config) { c.Timeouts.Read *= 2 }, "admin.timeouts", "vigil-one"},
		{"new certificate served", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = twoCert, twoKey }, "", "vigil-two"},
		{"client CA added: mTLS from the next connection", func(c *Config) {
			c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ClientCAFile = twoCert, twoKey, pki.caFile
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := cfg
			tt.mod(&next)
			err := s.Reload(next)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Reload = %v, want error containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if tt.wantCN != "" {
				if got := servedCN(t); got != tt.wantCN {
					t.Fatalf("served %q, want %q", got, tt.wantCN)
				}
				return
			}
			if _, err := tlsGet(addr, &tls.Config{RootCAs: pki.caPool}, toks["read"]); err == nil {
				t.Fatal("connection without a client certificate succeeded after enabling mTLS")
			}
			resp, err := tlsGet(addr, &tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.clientOK}}, toks["read"])
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("with client certificate: %v %v", resp, err)
			}
		})
	}
}

func TestServeShutdown(t *testing.T) {
	_, cfgs := testTokens(t)
	s, err := New(generousConfig(cfgs), &testBackend{}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
	var opErr *net.OpError
	if err := s.Serve(context.Background(), ln); !errors.As(err, &opErr) {
		t.Fatalf("Serve on a closed listener = %v, want the listener's error", err)
	}
}
