package notify

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxReasonLen caps the reason header.
const maxReasonLen = 1024

// msgPublisher publishes one message to JetStream and waits for its
// acknowledgement; jetstream.JetStream is one.
type msgPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// deadLetter writes deliveries that finally failed to VIGIL_NOTIFY_DEAD on
// vigil.notify.dead.<receiver>: the original delivery as the body, the
// reason and attempt count in headers. Receiver errors never carry URLs or
// tokens, so the reason is safe to store.
func (w *worker) deadLetter(ctx context.Context, ins []inbound, cause error, attempts int) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	reason := cause.Error()
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	for _, in := range ins {
		id := in.d.ID
		if id == "" {
			id = "seq-" + streamSeq(in.msg)
		}
		msg := nats.NewMsg(deadPrefix + w.name)
		msg.Data = in.msg.Data()
		msg.Header.Set(HeaderReason, reason)
		msg.Header.Set(HeaderReceiver, w.name)
		msg.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
		msg.Header.Set(HeaderDeliveryID, id)
		if _, err := w.dead.PublishMsg(pctx, msg, jetstream.WithMsgID("dead-"+id), jetstream.WithExpectStream(DeadLetterStream)); err != nil {
			return fmt.Errorf("publish dead letter: %w", err)
		}
	}
	return nil
}

func streamSeq(m jetstream.Msg) string {
	md, err := m.Metadata()
	if err != nil {
		return "unknown"
	}
	return strconv.FormatUint(md.Sequence.Stream, 10)
}
