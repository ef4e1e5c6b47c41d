package notify

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream resources owned by this package. Nothing else publishes to
// these subjects.
const (
	// OutboxStream is the work-queue stream of pending deliveries, one
	// subject per receiver: vigil.notify.deliver.<receiver>.
	OutboxStream  = "VIGIL_NOTIFY"
	deliverPrefix = "vigil.notify.deliver."
	// DeadLetterStream keeps deliveries that finally failed, on
	// vigil.notify.dead.<receiver>, with the reason in the Vigil-Reason
	// header.
	DeadLetterStream = "VIGIL_NOTIFY_DEAD"
	deadPrefix       = "vigil.notify.dead."
	// AlertsBucket holds alert state: alert.<fingerprint> (firing or
	// resolved, start, repeats, receivers told) and
	// recv.<fingerprint>.<receiver> (Slack channel and ts, last delivery).
	AlertsBucket = "VIGIL_ALERTS"
	// SilencesBucket holds silences, keyed by id.
	SilencesBucket = "VIGIL_SILENCES"

	consumerPrefix = "vigil-notify-"
)

// Dead-letter headers.
const (
	HeaderReason     = "Vigil-Reason"
	HeaderReceiver   = "Vigil-Receiver"
	HeaderAttempts   = "Vigil-Attempts"
	HeaderDeliveryID = "Vigil-Delivery-Id"
)

// resources are the streams and buckets a Notifier works with.
type resources struct {
	outbox   jetstream.Stream
	alerts   jetstream.KeyValue
	silences jetstream.KeyValue
}

// ensureResources creates or updates every stream and bucket; it is
// idempotent and safe to run at each start or reload.
func ensureResources(ctx context.Context, js jetstream.JetStream, s Settings, replicas int) (*resources, error) {
	outbox, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        OutboxStream,
		Description: "Vigil notifications waiting for delivery, one subject per receiver",
		Subjects:    []string{deliverPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      s.QueueMaxAge,
		Duplicates:  s.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", OutboxStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Vigil notifications that finally failed; reason in the Vigil-Reason header",
		Subjects:    []string{deadPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      s.DeadLetterMaxAge,
	}); err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DeadLetterStream, err)
	}
	r := &resources{outbox: outbox}
	if r.alerts, err = ensureBucket(ctx, js, AlertsBucket, "Vigil alert state", replicas); err != nil {
		return nil, err
	}
	if r.silences, err = ensureBucket(ctx, js, SilencesBucket, "Vigil silences", replicas); err != nil {
		return nil, err
	}
	return r, nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, name, desc string, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", name, err)
	}
	return kv, nil
}

// ensureConsumer creates or updates the durable consumer of one receiver.
func ensureConsumer(ctx context.Context, stream jetstream.Stream, receiver string, s Settings) (jetstream.Consumer, error) {
	c, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       consumerPrefix + receiver,
		Description:   "Vigil deliveries to receiver " + receiver,
		FilterSubject: deliverPrefix + receiver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    -1,
		// A digest holds up to digest_max deliveries unacknowledged.
		MaxAckPending: s.DigestMax + 1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer for receiver %s: %w", receiver, err)
	}
	return c, nil
}
