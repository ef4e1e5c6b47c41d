package ingest

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names. They are part of Vigil's contract with publishers
// and operators.
const (
	EventsStream       = "VIGIL_EVENTS"
	EventsSubjects     = "vigil.events.>"
	SubjectPrefix      = "vigil.events."
	DeadLetterStream   = "VIGIL_DEADLETTER"
	DeadLetterSubject  = "vigil.deadletter.events"
	HeaderRejectReason = "Vigil-Reject-Reason"
	HeaderRejectCode   = "Vigil-Reject-Code"
	HeaderSubject      = "Vigil-Subject"
)

// EnsureStreams creates or updates the events and dead-letter streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) error {
	events := jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "Vigil request events published by services",
		Subjects:    []string{EventsSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.StreamMaxAge,
		MaxBytes:    cfg.StreamMaxBytes,
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    replicas,
	}
	if _, err := js.CreateOrUpdateStream(ctx, events); err != nil {
		return fmt.Errorf("create or update stream %s: %w", EventsStream, err)
	}
	dead := jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Vigil events rejected by validation, with the reason in a header",
		Subjects:    []string{DeadLetterSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.DeadLetterMaxAge,
		MaxBytes:    cfg.DeadLetterMaxBytes,
		Replicas:    replicas,
	}
	if _, err := js.CreateOrUpdateStream(ctx, dead); err != nil {
		return fmt.Errorf("create or update stream %s: %w", DeadLetterStream, err)
	}
	return nil
}

func consumerConfig(cfg Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "Vigil ingest",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		MaxDeliver:    -1,
	}
}
