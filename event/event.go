package event

import (
	"net/netip"
	"time"
)

// Event is one API request as a service reports it. Field comments name the
// JSON key of the wire schema; docs/event-schema.json is the normative form.
type Event struct {
	Time      time.Time  // "ts": event time, RFC 3339
	Service   string     // "service": must equal the subject after "vigil.events."
	RequestID string     // "request_id": the dedup key (Nats-Msg-Id)
	Method    string     // "method": upper-case HTTP method token
	Endpoint  string     // "endpoint": route template, e.g. /v1/invoices/{id}
	Status    int        // "status": 100-599
	Path      string     // "path": optional raw path
	LatencyMS float64    // "latency_ms": optional; valid only when HasLatency
	SourceIP  netip.Addr // "source_ip": optional; zero Addr when absent
	User      string     // "user": optional attempted user name
	ClientID  string     // "client_id": optional API client or token id
	UserAgent string     // "user_agent": optional
	Attrs     map[string]string

	// HasLatency reports whether latency_ms was present.
	HasLatency bool

	// Received is when Vigil received the event: the JetStream timestamp of
	// the message that carried it, the same whether the message is consumed
	// live or replayed from the stream after a restart. Zero when unknown
	// (events read from a file). It is not part of the wire schema.
	Received time.Time
}

// Reset clears e for reuse by a decoder, keeping the Attrs map's storage.
func (e *Event) Reset() {
	attrs := e.Attrs
	clear(attrs)
	*e = Event{Attrs: attrs}
}
