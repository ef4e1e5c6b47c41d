package natsconn_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/natsconn"
	"github.com/vigil-sec/vigil/internal/testkit"
)

// TestEnsureWhileOthersDo: three cluster members that start together
// declare the same streams and buckets on a three-node cluster at once,
// first as new, then with a changed setting (an upgrade). Each must succeed
// within its deadline; the client's CreateOrUpdateStream made every member
// wait out its deadline from the second stream on.
func TestEnsureWhileOthersDo(t *testing.T) {
	cl := testkit.RunCluster(t, 3)
	for _, age := range []time.Duration{time.Hour, 2 * time.Hour} {
		var wg sync.WaitGroup
		for member := range 3 {
			_, js := testkit.ConnectURL(t, cl.URLs())
			wg.Go(func() {
				for _, name := range []string{"A", "B", "C"} {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := natsconn.EnsureStream(ctx, js, jetstream.StreamConfig{
						Name: name, Subjects: []string{"s." + name + ".>"}, Replicas: 3, MaxAge: age,
					})
					if err == nil {
						_, err = natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "KV_" + name, Replicas: 3, TTL: age})
					}
					cancel()
					if err != nil {
						t.Errorf("member %d, %s with max age %s: %v", member, name, age, err)
					}
				}
			})
		}
		wg.Wait()
	}
	_, js := testkit.ConnectURL(t, cl.URLs())
	s, err := js.Stream(t.Context(), "C")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 2*time.Hour {
		t.Errorf("stream C keeps max age %s, want the updated 2h", got)
	}
}
