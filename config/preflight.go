package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/vigil-sec/vigil/admin"
	"github.com/vigil-sec/vigil/internal/secret"
	"github.com/vigil-sec/vigil/privacy"
)

// The values of secret_file_permissions.
const (
	PermissionsWarn   = "warn"
	PermissionsRefuse = "refuse"
)

// Preflight is everything `vigil run` checks before it starts anything, and
// all that `vigil config check` checks, so the two cannot disagree: it
// validates c (resolving *_file secrets in place, as Validate does), checks
// that the listen addresses are valid and resolve, and reads every file the
// config names (token hashes, TLS certificates and keys, NATS creds and
// seeds, the privacy key) as the daemon will, failing with the daemon's
// message. Secret and key files that other users may read are returned as
// warnings, or refused with secret_file_permissions: refuse.
func (c *Config) Preflight() (warnings []string, err error) {
	files := secretFiles(reflect.ValueOf(c).Elem(), "") // before Validate clears password_file
	if err := c.Validate(); err != nil {
		return nil, err
	}
	checks := []func() error{
		func() error { return checkListen("listen", c.Listen, "--listen") },
		c.checkEmbedded,
		c.NATS.Check,
		func() error { return admin.Check(c.Admin) },
		func() error { _, err := privacy.New(c.Privacy); return err },
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return nil, err
		}
	}
	var loose []error
	for _, f := range files {
		if err := secret.CheckFileMode(f.path); err != nil {
			loose = append(loose, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	if c.SecretFilePermissions == PermissionsRefuse && len(loose) > 0 {
		loose = append(loose, errors.New("(refused because secret_file_permissions is refuse)"))
		return nil, errors.Join(loose...)
	}
	for _, e := range loose {
		warnings = append(warnings, e.Error())
	}
	return warnings, nil
}

// checkEmbedded checks what the embedded NATS server needs: an address to
// listen on and a data directory.
func (c *Config) checkEmbedded() error {
	if !c.NATS.Embedded() {
		return nil
	}
	if err := checkListen("nats.listen", c.NATS.Listen, "--nats-listen"); err != nil {
		return err
	}
	// The directory is created at start if missing: what exists of its
	// path must be directories.
	for p := filepath.Clean(c.DataDir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("data_dir %s: %s is a file, not a directory; point data_dir (--data-dir) at a directory Vigil may write", c.DataDir, p)
		}
		if err == nil || p == filepath.Dir(p) {
			return nil
		}
	}
}

// checkListen resolves a host:port Vigil will listen on; port 0 (and -1,
// NATS's spelling) asks for a free port.
func checkListen(key, addr, flag string) error {
	resolve := addr
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "-1" {
		resolve = net.JoinHostPort(host, "0")
	}
	if _, err := net.ResolveTCPAddr("tcp", resolve); err != nil {
		return fmt.Errorf("%s %q cannot be listened on (%v); give host:port with a host of this machine and a port from 1 to 65535, e.g. 127.0.0.1:9750 (%s)",
			key, addr, err, flag)
	}
	return nil
}

// namedFile is a file a config key names.
type namedFile struct{ key, path string }

// publicFileKeys name files that are not secret: certificates and CAs.
var publicFileKeys = map[string]bool{"cert_file": true, "ca_file": true, "client_ca_file": true}

// secretFiles returns every secret or key file named in v (a config struct):
// each non-empty string under a YAML key ending in _file (except
// certificates and CAs), and each secret.Secret read from a file. New
// sections are covered without a list to keep up to date.
func secretFiles(v reflect.Value, key string) []namedFile {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return secretFiles(v.Elem(), key)
	case reflect.Slice, reflect.Array:
		var out []namedFile
		for i := range v.Len() {
			out = append(out, secretFiles(v.Index(i), fmt.Sprintf("%s[%d]", key, i))...)
		}
		return out
	case reflect.Struct:
	default:
		return nil
	}
	if s, ok := v.Interface().(secret.Secret); ok {
		if f := s.File(); f != "" {
			return []namedFile{{key + "_file", f}}
		}
		return nil
	}
	var out []namedFile
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		child := key
		if !strings.Contains(opts, "inline") {
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			child = strings.TrimPrefix(key+"."+name, ".")
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.String && strings.HasSuffix(name, "_file") {
			if !publicFileKeys[name] && fv.String() != "" {
				out = append(out, namedFile{child, fv.String()})
			}
			continue
		}
		out = append(out, secretFiles(fv, child)...)
	}
	return out
}
