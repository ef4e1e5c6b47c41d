package testkit

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// leakGrace is how long goroutines may take to end after a test: servers
// and connections closed in cleanup stop their goroutines asynchronously.
const leakGrace = 10 * time.Second

// ignoredGoroutines are stack frames of goroutines that outlive tests by
// design and are not owned by the code under test: the testing package's
// own, signal handling, and the HTTP client's idle keep-alive connections.
var ignoredGoroutines = []string{
	"testing.(*T).Run",
	"testing.(*M).",
	"testing.tRunner",
	"testing.runTests",
	"os/signal.",
	"net/http.(*persistConn)",
	"runtime.goexit0",
	"runtime/trace.",
	// nats-server waits up to 30 s for the answer to a stream source's
	// consumer setup, without watching for shutdown (VIGIL_EVENTS sources
	// an empty stream; see ingest.NoDedupStream).
	"nats-server/v2/server.(*stream).trySetupSourceConsumer.func",
}

// CheckGoroutines fails t when, once t and its cleanups have finished,
// goroutines started during t are still running after a grace period, and
// prints their stacks. Call it first in a test (before anything whose
// cleanup stops goroutines), not in parallel tests: it cannot tell their
// goroutines apart.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := goroutineIDs()
	t.Cleanup(func() {
		if left := waitGoroutines(before); len(left) > 0 {
			t.Errorf("%d goroutines started by the test still run after %s:\n\n%s", len(left), leakGrace, strings.Join(left, "\n\n"))
		}
	})
}

// MainCheckingGoroutines runs a package's tests (call it from TestMain) and
// fails the run when goroutines started by them are still running after a
// grace period, printing their stacks.
func MainCheckingGoroutines(m *testing.M) {
	before := goroutineIDs()
	code := m.Run()
	if code == 0 {
		if left := waitGoroutines(before); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutines started by the tests still run after %s:\n\n%s\n",
				len(left), leakGrace, strings.Join(left, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// waitGoroutines polls until no goroutine other than those in before (and
// the ignored ones) runs, for up to leakGrace, and returns the stacks of
// those still running.
func waitGoroutines(before map[string]bool) []string {
	deadline := time.Now().Add(leakGrace)
	for {
		left := leaked(before)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaked returns the stacks of running goroutines not in before and not
// ignored.
func leaked(before map[string]bool) []string {
	var out []string
	for id, stack := range goroutines() {
		if before[id] || ignored(stack) {
			continue
		}
		out = append(out, stack)
	}
	slices.Sort(out)
	return out
}

func ignored(stack string) bool {
	for _, frame := range ignoredGoroutines {
		if strings.Contains(stack, frame) {
			return true
		}
	}
	return natsPublisherRace(stack)
}

// natsPublisherRace reports the one goroutine nats.go's jetstream leaks on
// its own: the first PublishAsync starts resetPendingAcksOnReconnect, which
// reads its status channel only once it runs; when CleanupPublisher (an
// emitter's Close) clears the channel first, the goroutine waits on a nil
// channel forever. The same goroutine waiting on a real channel is still
// reported: it ends when its connection closes.
func natsPublisherRace(stack string) bool {
	head, _, _ := strings.Cut(stack, "\n")
	return strings.Contains(head, "[chan receive (nil chan)") &&
		strings.Contains(stack, "nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect")
}

func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for id := range goroutines() {
		ids[id] = true
	}
	return ids
}

// goroutines returns the stack of every goroutine but the caller's, by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		head, _, _ := strings.Cut(g, "\n")
		// "goroutine 42 [chan receive]:"
		fields := strings.Fields(head)
		if len(fields) >= 2 && fields[0] == "goroutine" {
			out[fields[1]] = g
		}
	}
	return out
}
