// Package testfiles writes the files a Vigil config can name (TLS
// certificates and keys, NATS creds and NKey seeds, secrets, hash files)
// into a test's directory, with owner-only modes, so tests of config
// checking use real files. Only tests import it. The NATS creds and seed
// under testdata/ are throw-away test keys that no server trusts.
package testfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	//go:embed testdata/user.creds
	creds []byte
	//go:embed testdata/user.nk
	nkeySeed []byte
)

// Write writes content to dir/name with mode 0600 and returns its path.
func Write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// NATSCreds writes a NATS user creds file (JWT and NKey seed).
func NATSCreds(t testing.TB, dir string) string { return Write(t, dir, "user.creds", string(creds)) }

// NKeySeed writes a NATS user NKey seed file.
func NKeySeed(t testing.TB, dir string) string { return Write(t, dir, "user.nk", string(nkeySeed)) }

// TLS writes a self-signed certificate for localhost and 127.0.0.1, valid
// for a day, that is also its own CA, and its private key; it returns their
// paths: dir/name.crt and dir/name.key.
func TLS(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = Write(t, dir, name+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = Write(t, dir, name+".key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}
