package emit

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BatchIDPrefix starts the Nats-Msg-Id of a message holding several events.
const BatchIDPrefix = "vigil-batch-"

// BatchID returns the Nats-Msg-Id of a message holding events with these
// request ids, in message order: the request id itself for one event, else
// BatchIDPrefix followed by the first 16 bytes, in lower-case hex, of the
// SHA-256 of the request ids, each followed by "\n". Request ids hold no
// newline, so different lists never share the hashed text.
func BatchID(requestIDs ...string) string {
	if len(requestIDs) == 1 {
		return requestIDs[0]
	}
	var buf []byte
	for _, id := range requestIDs {
		buf = append(buf, id...)
		buf = append(buf, '\n')
	}
	return batchID(buf)
}

func batchID(idLines []byte) string {
	sum := sha256.Sum256(idLines)
	var out [len(BatchIDPrefix) + 32]byte
	copy(out[:], BatchIDPrefix)
	hex.Encode(out[len(BatchIDPrefix):], sum[:16])
	return string(out[:])
}

// batch collects the events of one subject into one NDJSON message.
type batch struct {
	service string
	subject string
	data    []byte // events, separated by "\n"
	ids     []byte // request ids, each followed by "\n"
	firstID string
	n       int
}

// fits reports whether an encoded event of size bytes can join b without
// passing maxBytes.
func (b *batch) fits(size, maxBytes int) bool {
	return b.n == 0 || len(b.data)+1+size <= maxBytes
}

func (b *batch) add(requestID string, encoded []byte) {
	if b.n == 0 {
		b.firstID = requestID
	} else {
		b.data = append(b.data, '\n')
	}
	b.data = append(b.data, encoded...)
	b.ids = append(b.ids, requestID...)
	b.ids = append(b.ids, '\n')
	b.n++
}

// message turns b into a JetStream message with its deterministic
// Nats-Msg-Id. b's data buffer moves into the message.
func (b *batch) message() *nats.Msg {
	id := b.firstID
	if b.n > 1 {
		id = batchID(b.ids)
	}
	return &nats.Msg{
		Subject: b.subject,
		Data:    b.data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
}
