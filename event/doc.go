// Package event owns Vigil's wire schema (v1): the Event type that services
// publish to NATS, its strict decoder and validator, and the limits that keep
// attacker-written input bounded. It depends on nothing else in Vigil.
//
// # Wire schema v1
//
// An event is one JSON object, UTF-8, on one line; a NATS message holds one
// event or several as NDJSON (one per line, "\n" or "\r\n", blank lines
// ignored). docs/event-schema.json (JSON Schema 2020-12) and
// docs/event-schema.md describe the fields; this package is the normative
// check and is stricter than the schema where JSON Schema cannot express a
// rule. In short:
//
//	ts          required  RFC 3339, optional fraction, zone Z or ±hh:mm; 1970-9999 in UTC,
//	                      not more than Limits.MaxFutureSkew (default 5m) ahead
//	service     required  ^[a-z0-9][a-z0-9_.-]{0,63}$; equals the subject after vigil.events.
//	request_id  required  1-128 visible ASCII (0x21-0x7E): it becomes the Nats-Msg-Id header
//	method      required  1-32 of A-Z 0-9 - _, starting with a letter
//	endpoint    required  route template: starts with '/', <= 256 bytes, no whitespace or controls
//	status      required  integer literal 100-599 (not 200.0, not 2e2)
//	path        optional  <= 2048 bytes
//	latency_ms  optional  finite number >= 0
//	source_ip   optional  IPv4 or IPv6 (net/netip), no zone
//	user        optional  <= 256 bytes
//	client_id   optional  <= 128 bytes
//	user_agent  optional  <= 512 bytes
//	attrs       optional  object of <= 32 string values; keys 1-64 bytes, values <= 256 bytes
//
// Lengths are bytes of UTF-8 after JSON unescaping. No string may hold a
// control character (U+0000-U+001F, U+007F-U+009F). JSON null for an
// optional field means absent; for a required field it is missing_field. An
// empty optional string also means absent (Event holds "" for both).
// Unknown fields, duplicate keys (a classic parser-differential trick),
// wrong types, bad values, lines over Limits.MaxEventBytes (default 16 KiB)
// and invalid UTF-8 are rejected; a \u escape of a lone UTF-16 surrogate
// counts as invalid UTF-8. Each rejection carries one Reason (a bounded
// metric label value) and names the field; its message repeats at most a
// short, sanitised excerpt of the input.
//
// # Decoding
//
// Decoder is a hand-written single-pass scanner: no reflection, no
// encoding/json. It validates in place on the caller's bytes, then copies the
// valid event's string values (unescaped) into one new string and slices the
// event's fields out of it, so a decoded event costs one allocation. Decoded
// times are in UTC. Events from one Decoder share nothing mutable except the
// Attrs map, which Decode reuses: copy what you keep, and clone
// (strings.Clone) strings kept for long, since each pins all of its event's
// strings.
package event
