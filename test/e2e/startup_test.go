package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestStartupMistakes runs `vigil run` with each configuration or
// environment mistake a first user makes. The binary must exit with status
// 1 after one error line that names the problem and the way out, and never
// print a stack trace (under systemd that would be a crash loop of them).
// Mistakes the config check finds (a port out of range, missing files) are
// refused before the daemon starts, in a "vigil run: " line; those only
// starting finds (a busy port), in an error-level log line.
func TestStartupMistakes(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	config := func(name, yaml string) string {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		args  []string
		wants []string // fragments of the error line
	}{
		{"admin port busy", []string{"--listen", busy.Addr().String()},
			[]string{"cannot listen on " + busy.Addr().String(), "address already in use", "--listen"}},
		{"admin port impossible", []string{"--listen", "127.0.0.1:99999"},
			[]string{"127.0.0.1:99999", "invalid port", "--listen"}},
		{"nats port busy", []string{"--nats-listen", busy.Addr().String()},
			[]string{"embedded nats cannot listen on " + busy.Addr().String(), "--nats-listen"}},
		{"token sha256_file missing", []string{"--config", config("token", "admin:\n  tokens:\n    - name: oncall\n      sha256_file: "+missing+"\n      scopes: [read]\n")},
			[]string{"admin.tokens[0]", missing, "'vigil token new'"}},
		{"tls file missing", []string{"--config", config("tls", "admin:\n  tls: {cert_file: "+missing+".crt, key_file: "+missing+".key}\n")},
			[]string{"admin.tls", missing + ".crt", "point cert_file at the PEM certificate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--data-dir", filepath.Join(t.TempDir(), "data"), "--nats-listen", freeAddr(t), "--listen", freeAddr(t)}, tc.args...)
			p := startProc(t, "vigil", bins.vigil, nil, args...)
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				t.Fatal("vigil did not exit within 60s")
			}
			checkOneErrorLine(t, p, 1, tc.wants)
		})
	}
}

// TestStartupWaitsForNATS starts `vigil run` against an external NATS
// server that is not running yet: the log says the daemon waits and for
// which server, it becomes ready once the server comes, and a SIGTERM
// while it waits stops it at once with one clear line.
func TestStartupWaitsForNATS(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	v := &vigil{t: t, cfg: vigilConfig{NATSURL: "nats://" + addr}, admin: freeAddr(t)}
	dir := t.TempDir()
	v.dataDir, v.cfgPath = filepath.Join(dir, "data"), filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(v.cfgPath, []byte(v.configYAML(filepath.Join(dir, "rules"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeRules(filepath.Join(dir, "rules"), nil, true); err != nil {
		t.Fatal(err)
	}

	stopped := startProc(t, "vigil", bins.vigil, []string{"WEBHOOK_SECRET=" + webhookSecret}, "run", "--config", v.cfgPath)
	testkit.WaitUntil(t, 20*time.Second, "the log to say that vigil waits for NATS", func() bool {
		return len(stopped.logLines(`"msg":"waiting for NATS`)) > 0
	})
	_ = stopped.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-stopped.done:
	case <-time.After(10 * time.Second):
		t.Fatal("vigil waiting for NATS did not stop within 10s of SIGTERM")
	}
	checkOneErrorLine(t, stopped, 1, []string{"stopped while waiting for NATS at nats://" + addr, "--nats-url"})

	p := startProc(t, "vigil", bins.vigil, []string{"WEBHOOK_SECRET=" + webhookSecret}, "run", "--config", v.cfgPath)
	testkit.WaitUntil(t, 20*time.Second, "the log to say that vigil waits for NATS", func() bool {
		return len(p.logLines(`"msg":"waiting for NATS`)) > 0
	})
	ns := &natsServer{t: t, addr: addr, store: t.TempDir()}
	ns.start()
	v.p = p
	v.waitReady(60 * time.Second)
	v.stop()
}

// checkOneErrorLine checks that p exited with status code after exactly one
// error line (an error-level log line, or the "vigil run: " line of a
// refused config) holding every fragment of wants, and printed no stack
// trace.
func checkOneErrorLine(t *testing.T, p *proc, code int, wants []string) {
	t.Helper()
	out := p.out.String()
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("vigil printed a stack trace:\n%s", out)
	}
	if got := p.cmd.ProcessState.ExitCode(); got != code {
		t.Errorf("exit status %d, want %d", got, code)
	}
	errs := append(p.logLines(`"level":"ERROR"`), p.logLines("vigil run: ")...)
	if len(errs) != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", len(errs), out)
	}
	for _, w := range wants {
		if !strings.Contains(errs[0], w) {
			t.Errorf("error line lacks %q: %s", w, errs[0])
		}
	}
}
