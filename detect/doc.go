// Package detect is Vigil's rule engine: the rule model and its YAML loader,
// the compiler (expr-lang/expr match expressions, Go templates), sliding
// windows on event time with per-group state in a fixed-size fastcache, and
// alert transitions (firing, repeat, resolved).
//
// Time is event time. The watermark is the newest event time minus the
// allowed lateness (and, in live mode, never behind the wall clock minus the
// lateness); events older than the watermark are late and left out. Windows
// are made of buckets of about W/60 (at least one second) aligned to the Unix
// epoch: an event counts in every window that ends within W after it, and
// may count for up to one bucket longer. An alert fires on the event that
// makes its condition hold, repeats after repeat_interval while it holds,
// and resolves once the watermark shows the condition false for
// resolve_after. docs/rules.md describes the rule format and semantics for
// rule authors.
//
// Snapshot and Restore carry the engine's state (windows, firing alerts,
// incidents, clock) to a new engine with the same rules and options, so that
// a restarted daemon replays only the events after the snapshot;
// snapshot.go describes the format and its guarantees.
package detect
