package deploy

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// needTool returns the path of an external tool. When the tool is missing the
// test is skipped, unless the environment variable CI is "true": there a
// missing tool fails the test, so CI cannot pass by proving nothing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true but not installed (%v); .ci/run must install it", name, err)
	}
	t.Skipf("%s not installed (%v); install it or run under CI=true to make this a failure", name, err)
	return ""
}

// run executes a command with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// repoRoot is the module root, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// vigilBuild is the vigil binary shared by every test of this package: it
// is built once, on first use, and removed by TestMain.
var vigilBuild struct {
	once      sync.Once
	dir, path string
	out       string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if vigilBuild.dir != "" {
		_ = os.RemoveAll(vigilBuild.dir)
	}
	os.Exit(code)
}

// buildVigil returns the vigil binary, building it on first use with the
// default build settings, so it reuses what `go vet` and `go test` compiled
// (a cold build on a busy 2-core machine takes minutes, hence the timeout).
func buildVigil(t *testing.T) string {
	t.Helper()
	goTool := needTool(t, "go")
	root := repoRoot(t)
	vigilBuild.once.Do(func() {
		if vigilBuild.dir, vigilBuild.err = os.MkdirTemp("", "vigil-deploy-test-"); vigilBuild.err != nil {
			return
		}
		vigilBuild.path = filepath.Join(vigilBuild.dir, "vigil")
		vigilBuild.out, vigilBuild.err = run(t, 10*time.Minute, root, nil, goTool, "build", "-o", vigilBuild.path, "./cmd/vigil")
	})
	if vigilBuild.err != nil {
		t.Fatalf("go build ./cmd/vigil: %v\n%s", vigilBuild.err, vigilBuild.out)
	}
	return vigilBuild.path
}

// lines splits output into non-empty trimmed lines.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
