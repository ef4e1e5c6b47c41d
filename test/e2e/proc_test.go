package e2e

import (
	"fmt"
	"github.com/vigil-sec/vigil/internal/testkit"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is one child process. Its output goes to a buffer that tests can
// search (and to the test log with -v).
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer // the process's output
	done chan struct{}       // closed when the process has exited
	err  error               // Wait's result; read after done
}

// startProc starts bin with args and env added to the environment. The
// process is killed when the test ends if it is still running.
func startProc(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || testing.Verbose() {
			t.Logf("--- output of %s (pid %d):\n%s", name, p.cmd.Process.Pid, tail(p.out.String(), 60))
		}
	})
	return p
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate sends SIGTERM and waits up to timeout for a clean exit, then
// fails the test (after a SIGKILL) if the process did not stop.
func (p *proc) terminate(timeout time.Duration) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
		}
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("%s did not stop within %s of SIGTERM", p.name, timeout)
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logLines returns the process's output lines that contain s.
func (p *proc) logLines(s string) []string {
	var out []string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address whose port was free a moment ago,
// for a server that must come back on the same address after a restart.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// natsServer is an external nats-server process with JetStream, storing
// under its own directory so that a restart keeps its streams.
type natsServer struct {
	t     testing.TB
	name  string // the process's name in the test log
	addr  string
	store string
	conf  string // a config file to run with instead of addr and store
	p     *proc
}

func startNATSServer(t testing.TB) *natsServer {
	t.Helper()
	s := &natsServer{t: t, name: "nats-server", addr: freeAddr(t), store: t.TempDir()}
	s.start()
	return s
}

func (s *natsServer) url() string { return "nats://" + s.addr }

// start runs the server on its address and store and waits until it
// accepts connections.
func (s *natsServer) start() {
	s.t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	args := []string{"-a", host, "-p", port, "-js", "-sd", s.store, "--server_name", "e2e"}
	if s.conf != "" {
		args = []string{"-c", s.conf}
	}
	s.p = startProc(s.t, s.name, bins.nats, nil, args...)
	testkit.WaitFor(s.t, 20*time.Second, "nats-server to accept connections", func() error {
		if s.p.exited() {
			return fmt.Errorf("nats-server exited: %v", s.p.err)
		}
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// stop shuts the server down cleanly (SIGTERM).
func (s *natsServer) stop() { s.p.terminate(30 * time.Second) }
