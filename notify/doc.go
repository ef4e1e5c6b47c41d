// Package notify delivers Vigil's alerts to people and systems, once each and
// without losing any across failures and restarts.
//
// It owns alert state, routing, silences, the durable outbox and delivery:
//
//   - Notify takes an alert transition from the detection engine, checks it
//     against alert state in the VIGIL_ALERTS key-value bucket (a firing
//     alert that was already announced is not announced again), applies
//     silences (VIGIL_SILENCES), routes it to receivers and writes one
//     message per receiver to the VIGIL_NOTIFY work-queue stream, with a
//     Nats-Msg-Id derived from the alert, its transition and the receiver so
//     a repeated call is deduplicated by JetStream.
//   - Run starts one worker per receiver, each with its own durable consumer,
//     so a slow or failing receiver delays nobody else. A worker retries with
//     exponential backoff and jitter up to max_elapsed, honours Retry-After,
//     applies the receiver's rate limit and circuit breaker, rolls a flood
//     into digests, and acks a message only after the receiver accepted it.
//     What finally fails is written to VIGIL_NOTIFY_DEAD with the reason.
//   - Alerts of one incident (detect.Alert.IncidentID) reach a receiver as
//     one conversation: a receiver that threads (Slack through the Web API)
//     posts them in one thread per incident (thread.go), and a route with
//     per_incident tells its receivers of an incident once and of its
//     escalations (plan.go).
//
// Receivers live in subpackages (slack, webhook, alertmanager, jsonlog) and
// share the contract in notify/receiver. The user-facing description is
// docs/notifications.md; the webhook body is docs/webhooks.md.
package notify
