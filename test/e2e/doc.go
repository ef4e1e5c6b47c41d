// Package e2e is Vigil's end-to-end suite: it builds the real vigil binary
// (and a nats-server binary from the module's own dependency), runs them as
// separate processes on loopback ports, publishes with the project's own
// publishers (emit, simulate) and receives alerts with httptest webhook
// receivers that check every Standard Webhooks signature.
//
// The scenarios are the ones an SRE needs before trusting Vigil with
// production traffic: a kill -9 in the middle of an attack, an attack whose
// events straddle a restart, the NATS server going away and coming back
// (an external nats-server process, and the embedded one through a daemon
// restart), a flood of malformed messages mixed with valid ones, a
// receiver that takes five seconds per request, and three daemons run as a
// cluster on a three-node NATS cluster losing their active member and a
// NATS node.
//
// Short versions run in `go test ./...` (each well under a minute). The long
// versions, the throughput and latency measurements and the soak run only
// when asked:
//
//	go test ./test/e2e/                                  # short suite
//	VIGIL_E2E_LONG=1 go test -timeout 30m ./test/e2e/    # long scenarios
//	go test -run '^$' -bench . -benchtime 1x ./test/e2e/ # measurements
//	VIGIL_E2E_SOAK=10m go test -run TestSoak -timeout 30m -v ./test/e2e/
//
// docs/performance.md records the figures and the exact commands.
package e2e
