package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/internal/natsconn"
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

// resources are the streams, buckets and consumers a Notifier works with.
type resources struct {
	outbox    jetstream.Stream
	alerts    jetstream.KeyValue
	silences  jetstream.KeyValue
	consumers map[string]jetstream.Consumer // by receiver
}

// resourcePlan is what a Notifier needs from JetStream: the resources that
// are as it needs them, and the changes that make the others so.
type resourcePlan struct {
	res     resources
	changes []change
}

// change creates or updates one resource, and can undo that.
type change struct {
	apply func(ctx context.Context, res *resources) error
	// undo restores what was there before apply; nil leaves a created
	// stream or bucket in place (another instance may use it already).
	undo func(ctx context.Context) error
}

// planResources reads the streams, buckets and consumers a Notifier with
// settings s and these receivers needs, and plans a change for each that is
// missing or differs in a setting Vigil sets (settings it does not set, such
// as limits an operator added, are kept). It changes nothing.
func planResources(ctx context.Context, js jetstream.JetStream, s Settings, replicas int, receivers []string) (*resourcePlan, error) {
	p := &resourcePlan{res: resources{consumers: map[string]jetstream.Consumer{}}}
	err := p.stream(ctx, js, OutboxStream, func(c *jetstream.StreamConfig) {
		c.Name, c.Description = OutboxStream, "Vigil notifications waiting for delivery, one subject per receiver"
		c.Subjects, c.Retention, c.Discard = []string{deliverPrefix + ">"}, jetstream.WorkQueuePolicy, jetstream.DiscardOld
		c.Storage, c.Replicas, c.MaxAge, c.Duplicates = jetstream.FileStorage, replicas, s.QueueMaxAge, s.DuplicateWindow
	}, func(r *resources, st jetstream.Stream) { r.outbox = st })
	if err != nil {
		return nil, err
	}
	err = p.stream(ctx, js, DeadLetterStream, func(c *jetstream.StreamConfig) {
		c.Name, c.Description = DeadLetterStream, "Vigil notifications that finally failed; reason in the Vigil-Reason header"
		c.Subjects, c.Retention = []string{deadPrefix + ">"}, jetstream.LimitsPolicy
		c.Storage, c.Replicas, c.MaxAge = jetstream.FileStorage, replicas, s.DeadLetterMaxAge
	}, func(*resources, jetstream.Stream) {})
	if err != nil {
		return nil, err
	}
	if err := p.bucket(ctx, js, AlertsBucket, "Vigil alert state", replicas, func(r *resources, kv jetstream.KeyValue) { r.alerts = kv }); err != nil {
		return nil, err
	}
	if err := p.bucket(ctx, js, SilencesBucket, "Vigil silences", replicas, func(r *resources, kv jetstream.KeyValue) { r.silences = kv }); err != nil {
		return nil, err
	}
	for _, name := range receivers {
		if err := p.consumer(ctx, js, name, s); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// stream plans the stream that set describes; use receives its handle.
func (p *resourcePlan) stream(ctx context.Context, js jetstream.JetStream, name string, set func(*jetstream.StreamConfig), use func(*resources, jetstream.Stream)) error {
	st, err := js.Stream(ctx, name)
	var had *jetstream.StreamConfig
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("read stream %s: %w", name, err)
	default:
		had = &st.CachedInfo().Config
	}
	planChange(p, "create stream "+name, st, had, set, func(ctx context.Context, c jetstream.StreamConfig) (jetstream.Stream, error) {
		return natsconn.EnsureStream(ctx, js, c)
	}, use, nil)
	return nil
}

// bucket plans a key-value bucket; use receives its handle.
func (p *resourcePlan) bucket(ctx context.Context, js jetstream.JetStream, name, desc string, replicas int, use func(*resources, jetstream.KeyValue)) error {
	kv, err := js.KeyValue(ctx, name)
	var had *jetstream.KeyValueConfig
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
	case err != nil:
		return fmt.Errorf("read key-value bucket %s: %w", name, err)
	default:
		st, err := kv.Status(ctx)
		if err != nil {
			return fmt.Errorf("read key-value bucket %s: %w", name, err)
		}
		cfg := st.Config()
		had = &cfg
	}
	set := func(c *jetstream.KeyValueConfig) {
		c.Bucket, c.Description, c.History, c.Storage, c.Replicas = name, desc, 1, jetstream.FileStorage, replicas
	}
	planChange(p, "create key-value bucket "+name, kv, had, set, func(ctx context.Context, c jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		return natsconn.EnsureKeyValue(ctx, js, c)
	}, use, nil)
	return nil
}

// consumer plans the durable consumer of one receiver.
func (p *resourcePlan) consumer(ctx context.Context, js jetstream.JetStream, receiver string, s Settings) error {
	durable := consumerPrefix + receiver
	cons, err := js.Consumer(ctx, OutboxStream, durable)
	var had *jetstream.ConsumerConfig
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("read consumer for receiver %s: %w", receiver, err)
	default:
		had = &cons.CachedInfo().Config
	}
	set := func(c *jetstream.ConsumerConfig) {
		c.Durable, c.Description = durable, "Vigil deliveries to receiver "+receiver
		c.FilterSubject, c.AckPolicy, c.AckWait = deliverPrefix+receiver, jetstream.AckExplicitPolicy, s.AckWait
		c.MaxDeliver, c.DeliverPolicy = -1, jetstream.DeliverAllPolicy
		c.MaxAckPending = s.DigestMax + 1 // a digest holds up to digest_max deliveries unacknowledged
	}
	write := func(ctx context.Context, c jetstream.ConsumerConfig) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, OutboxStream, c)
	}
	use := func(r *resources, c jetstream.Consumer) { r.consumers[receiver] = c }
	remove := func(ctx context.Context) error { return js.DeleteConsumer(ctx, OutboxStream, durable) }
	planChange(p, "create consumer for receiver "+receiver, cons, had, set, write, use, remove)
	return nil
}

// planChange plans one resource: had is its config, nil when it does not
// exist, and cur its handle; set sets what Vigil sets on a config. When
// set changes nothing, use gets cur; otherwise a change writes the config
// set makes of had and gives use the handle, and its undo writes had back,
// or, for a resource that did not exist, calls remove (which may be nil).
func planChange[C, H any](p *resourcePlan, what string, cur H, had *C, set func(*C), write func(context.Context, C) (H, error), use func(*resources, H), remove func(context.Context) error) {
	var want C
	if had != nil {
		want = *had
	}
	set(&want)
	if had != nil && reflect.DeepEqual(want, *had) {
		use(&p.res, cur)
		return
	}
	c := change{undo: remove, apply: func(ctx context.Context, r *resources) error {
		h, err := write(ctx, want)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		use(r, h)
		return nil
	}}
	if had != nil {
		prev := *had
		c.undo = func(ctx context.Context) error {
			_, err := write(ctx, prev)
			return err
		}
	}
	p.changes = append(p.changes, c)
}

// apply makes the planned changes in order and returns every resource. If
// one fails, those made before it are undone, newest first.
func (p *resourcePlan) apply(ctx context.Context) (*resources, error) {
	res := p.res
	res.consumers = maps.Clone(p.res.consumers)
	for i, c := range p.changes {
		err := c.apply(ctx, &res)
		if err == nil {
			continue
		}
		// The context may be what failed; undoing must not depend on it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		var undo []error
		for j := i - 1; j >= 0; j-- {
			if u := p.changes[j].undo; u != nil {
				if uerr := u(uctx); uerr != nil {
					undo = append(undo, uerr)
				}
			}
		}
		if len(undo) > 0 {
			return nil, fmt.Errorf("%w; undoing the changes made before it failed too (%w); the next start or successful reload makes them again", err, errors.Join(undo...))
		}
		return nil, err
	}
	return &res, nil
}

// undoTimeout bounds undoing a failed apply.
const undoTimeout = 10 * time.Second
