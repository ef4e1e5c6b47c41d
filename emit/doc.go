// Package emit is the service side of Vigil: it lets an application publish
// one security event per API request to Vigil over NATS JetStream without
// ever slowing or failing the request.
//
// An [Emitter] takes events through [Emitter.Emit], which never blocks: the
// event goes into a bounded in-memory buffer, or is dropped and counted when
// the buffer is full. A background goroutine owned by the Emitter batches
// events per service into NDJSON messages on the subject
// "vigil.events.<service>" and publishes them with JetStream async publish.
// Every message carries the header Nats-Msg-Id so that Vigil applies a
// retried publish once (it de-duplicates per service subject):
//
//   - a message with one event uses the event's request_id;
//   - a message with several events uses "vigil-batch-" followed by the first
//     16 bytes, in lower-case hex, of the SHA-256 of the events' request ids,
//     each followed by "\n", in message order. The same batch always gets the
//     same id, so a retry within Vigil's duplicate window is dropped by
//     Vigil.
//
// While NATS is unreachable nothing is published; messages already built are
// kept (up to the in-flight limit) and retried with backoff, new events wait
// in the buffer, and once the buffer is full further events are dropped and
// counted. When the connection comes back (nats.go reconnects on its own)
// publishing resumes without a restart. Each event ends up exactly once as
// published (acknowledged by JetStream) or dropped with a reason, so
// emitted = published + dropped + buffered + in flight at every moment.
//
// [Middleware] wraps a net/http handler and emits one event per request: the
// route template, method, status, latency, request id, client IP (taken from
// X-Forwarded-For only through trusted proxies), user agent, and the user,
// client id and attributes that the service's own handlers record with
// [SetUser], [SetClientID] and [SetAttr].
//
// docs/emitting.md explains how a team adds Vigil to a Go or Node.js service.
package emit
