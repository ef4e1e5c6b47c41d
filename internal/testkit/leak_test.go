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

// TestIgnoredOnlyTheNATSPublisherRace checks that nats.go's goroutine is
// ignored when it waits on the nil channel (its race with
// CleanupPublisher), and reported while it waits on a live one.
func TestIgnoredOnlyTheNATSPublisherRace(t *testing.T) {
	frames := "github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect(0x177910ff6090)\n" +
		"\t/root/go/pkg/mod/github.com/nats-io/nats.go@v1.55.0/jetstream/publish.go:570 +0x72\n"
	for _, tc := range []struct {
		name, stack string
		want        bool
	}{
		{"nil channel", "goroutine 1814 [chan receive (nil chan)]:\n" + frames, true},
		{"nil channel, long", "goroutine 1814 [chan receive (nil chan), 3 minutes]:\n" + frames, true},
		{"live channel", "goroutine 1814 [chan receive]:\n" + frames, false},
		{"another nil channel", "goroutine 7 [chan receive (nil chan)]:\nmain.worker()\n", false},
	} {
		if got := ignored(tc.stack); got != tc.want {
			t.Errorf("%s: ignored = %v, want %v", tc.name, got, tc.want)
		}
	}
}
