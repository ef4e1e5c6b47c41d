package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// binaries are the executables the suite drives. TestMain builds them once
// per run; tests only read them.
type binaries struct {
	vigil string
	nats  string
}

var bins binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := 1
	if bins, err = build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles vigil from this module and nats-server from the module's
// own nats-server dependency into dir.
func build(dir string) (binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return binaries{}, err
	}
	b := binaries{vigil: filepath.Join(dir, "vigil"), nats: filepath.Join(dir, "nats-server")}
	targets := []struct{ out, pkg string }{
		{b.vigil, "./cmd/vigil"},
		{b.nats, "github.com/nats-io/nats-server/v2"},
	}
	for _, tg := range targets {
		cmd := exec.Command("go", "build", "-o", tg.out, tg.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return binaries{}, fmt.Errorf("go build %s: %v\n%s", tg.pkg, err, out)
		}
	}
	return b, nil
}

// moduleRoot is the directory holding go.mod, two levels above this package.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the e2e package source")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	return root, nil
}

// longRun reports whether the long scenarios were asked for with
// VIGIL_E2E_LONG=1.
func longRun() bool {
	v, _ := strconv.ParseBool(os.Getenv("VIGIL_E2E_LONG"))
	return v
}

// pick returns short in the default suite and long with VIGIL_E2E_LONG=1.
func pick[T any](short, long T) T {
	if longRun() {
		return long
	}
	return short
}

// requireLong skips t unless the long scenarios were asked for.
func requireLong(t testing.TB) {
	t.Helper()
	if !longRun() {
		t.Skip("long scenario: run with VIGIL_E2E_LONG=1")
	}
}
