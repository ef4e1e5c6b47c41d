package testkit

import (
	"strings"
	"testing"
)

// TestLeakedFindsAGoroutineStartedLater checks that a goroutine started
// after the snapshot is reported, with its stack, until it ends.
func TestLeakedFindsAGoroutineStartedLater(t *testing.T) {
	before := goroutineIDs()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		leakyWorker(stop)
	}()
	WaitFor(t, 5e9, "the goroutine to show", func() error {
		for _, s := range leaked(before) {
			if strings.Contains(s, "leakyWorker") {
				return nil
			}
		}
		return errNotYet
	})
	close(stop)
	<-done
	if left := waitGoroutines(before); len(left) != 0 {
		t.Fatalf("goroutines reported after the worker ended:\n%s", strings.Join(left, "\n\n"))
	}
}

func leakyWorker(stop chan struct{}) { <-stop }
