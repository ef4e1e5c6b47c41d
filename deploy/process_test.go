package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// process is a child process a test started; its output goes to a log file
// that is shown when the test fails.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startProcess starts bin with args and stops it (SIGTERM, then SIGKILL
// after 10 s) when the test ends.
func startProcess(t *testing.T, name, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan error, 1)}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.done <- p.cmd.Wait()
		f.Close()
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("last lines of %s's output:\n%s", name, tail(p.log, 40))
		}
	})
	return p
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s) unless it has
// ended already; it may be called again, as the test's cleanup does.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if ended, _ := p.exited(); ended {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop within 10 s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		err = <-p.done
	}
	p.done <- err // keep it for exited and later calls
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err // keep it for stop and later calls
		return true, err
	default:
		return false, nil
	}
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func waitHTTP(t *testing.T, p *process, url string, timeout time.Duration) {
	t.Helper()
	testkit.WaitFor(t, timeout, p.name+" at "+url, func() error {
		if ok, err := p.exited(); ok {
			t.Fatalf("%s exited while starting: %v\n%s", p.name, err, tail(p.log, 40))
		}
		status, _, err := httpGet(url, "")
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("status %d", status)
		}
		return nil
	})
}

// httpGet GETs url with an optional bearer token and returns status and body.
func httpGet(url, token string) (int, []byte, error) {
	return httpDo(http.MethodGet, url, token, 5*time.Second)
}

// httpDo sends a request without a body to url with an optional bearer
// token and returns status and body; it waits at most timeout.
func httpDo(method, url, token string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	return resp.StatusCode, body, err
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var ls []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ls = append(ls, sc.Text())
		if len(ls) > n {
			ls = ls[1:]
		}
	}
	return strings.Join(ls, "\n")
}
