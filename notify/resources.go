package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

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
	var want jetstream.StreamConfig
	st, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("read stream %s: %w", name, err)
	default:
		want = st.CachedInfo().Config
	}
	set(&want)
	if st != nil && reflect.DeepEqual(want, st.CachedInfo().Config) {
		use(&p.res, st)
		return nil
	}
	c := change{apply: func(ctx context.Context, r *resources) error {
		st, err := js.CreateOrUpdateStream(ctx, want)
		if err != nil {
			return fmt.Errorf("create stream %s: %w", name, err)
		}
		use(r, st)
		return nil
	}}
	if st != nil {
		c.undo = func(ctx context.Context) error {
			_, err := js.UpdateStream(ctx, st.CachedInfo().Config)
			return err
		}
	}
	p.changes = append(p.changes, c)
	return nil
}

// bucket plans a key-value bucket; use receives its handle.
func (p *resourcePlan) bucket(ctx context.Context, js jetstream.JetStream, name, desc string, replicas int, use func(*resources, jetstream.KeyValue)) error {
	set := func(c *jetstream.KeyValueConfig) {
		c.Bucket, c.Description, c.History, c.Storage, c.Replicas = name, desc, 1, jetstream.FileStorage, replicas
	}
	var want, had jetstream.KeyValueConfig
	kv, err := js.KeyValue(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv = nil
	case err != nil:
		return fmt.Errorf("read key-value bucket %s: %w", name, err)
	default:
		st, err := kv.Status(ctx)
		if err != nil {
			return fmt.Errorf("read key-value bucket %s: %w", name, err)
		}
		had = st.Config()
		want = had
	}
	set(&want)
	if kv != nil && reflect.DeepEqual(want, had) {
		use(&p.res, kv)
		return nil
	}
	c := change{apply: func(ctx context.Context, r *resources) error {
		kv, err := js.CreateOrUpdateKeyValue(ctx, want)
		if err != nil {
			return fmt.Errorf("create key-value bucket %s: %w", name, err)
		}
		use(r, kv)
		return nil
	}}
	if kv != nil {
		c.undo = func(ctx context.Context) error {
			_, err := js.UpdateKeyValue(ctx, had)
			return err
		}
	}
	p.changes = append(p.changes, c)
	return nil
}

// consumer plans the durable consumer of one receiver.
func (p *resourcePlan) consumer(ctx context.Context, js jetstream.JetStream, receiver string, s Settings) error {
	durable := consumerPrefix + receiver
	var want jetstream.ConsumerConfig
	cons, err := js.Consumer(ctx, OutboxStream, durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		cons = nil
	case err != nil:
		return fmt.Errorf("read consumer for receiver %s: %w", receiver, err)
	default:
		want = cons.CachedInfo().Config
	}
	want.Durable, want.Description = durable, "Vigil deliveries to receiver "+receiver
	want.FilterSubject, want.AckPolicy, want.AckWait = deliverPrefix+receiver, jetstream.AckExplicitPolicy, s.AckWait
	want.MaxDeliver, want.DeliverPolicy = -1, jetstream.DeliverAllPolicy
	want.MaxAckPending = s.DigestMax + 1 // a digest holds up to digest_max deliveries unacknowledged
	if cons != nil && reflect.DeepEqual(want, cons.CachedInfo().Config) {
		p.res.consumers[receiver] = cons
		return nil
	}
	c := change{apply: func(ctx context.Context, r *resources) error {
		cons, err := js.CreateOrUpdateConsumer(ctx, OutboxStream, want)
		if err != nil {
			return fmt.Errorf("create consumer for receiver %s: %w", receiver, err)
		}
		r.consumers[receiver] = cons
		return nil
	}}
	c.undo = func(ctx context.Context) error { return js.DeleteConsumer(ctx, OutboxStream, durable) }
	if cons != nil {
		had := cons.CachedInfo().Config
		c.undo = func(ctx context.Context) error {
			_, err := js.UpdateConsumer(ctx, OutboxStream, had)
			return err
		}
	}
	p.changes = append(p.changes, c)
	return nil
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
