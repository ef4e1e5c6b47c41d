package admin

import (
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/event"
)

// TestAuthFailureEventsPassValidator: what OnAuthFailure gets must survive
// Vigil's own strict decoder when the daemon publishes it, whatever the
// client sent.
func TestAuthFailureEventsPassValidator(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name string
		hdr  []string
	}{
		{"plain", nil},
		{"huge user agent", []string{"User-Agent", strings.Repeat("é", 600)}},
		{"hostile request id", []string{"X-Request-Id", strings.Repeat("x", 200)}},
	}
	dec := event.NewDecoder(event.DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.do(t, "unknown", "DELETE", "/api/v1/silences/abc", nil, tt.hdr...)
			evs := f.authEvents()
			ev := evs[len(evs)-1]
			var got event.Event
			if err := dec.Decode(ev.AppendJSON(nil), AuthFailureService, f.clock.Now(), &got); err != nil {
				t.Fatalf("decoder refused %s: %v", ev.AppendJSON(nil), err)
			}
			if got.Endpoint != "/api/v1/silences/{id}" || got.Status != 401 {
				t.Fatalf("decoded %+v", got)
			}
		})
	}
}
