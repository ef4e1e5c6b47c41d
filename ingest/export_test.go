package ingest

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Polls returns how many times the consumer has asked the server for its
// state (once per second on its clock), so that a test driving a fake
// clock can wait for the round a tick started.
func (c *Consumer) Polls() int64 { return c.polls.Load() }

// BeforeSettle makes the consumer call f with a chunk's stream sequences
// before it settles the chunk, so that a test can hold settling back.
func (c *Consumer) BeforeSettle(f func(seqs []uint64)) { c.beforeSettle = f }

// SetReconnectGrace sets how long after (re)connecting the server's
// "nothing left" is not believed, so that a test need not wait 5 s.
func (c *Consumer) SetReconnectGrace(d time.Duration) { c.progress.grace = d }

// SetPullBytes sets what one live pull request and one fetch of a replay
// ask for at most (livePullBytes and replayFetchBytes), so that a test
// against a server with a small max_pending need not fill 64 MiB.
func (c *Consumer) SetPullBytes(live, replay int) { c.bytes.pull, c.bytes.replay = live, replay }

// ConsumerConfig is the durable consumer's configuration as bind declares
// it, so that a test can act as another member pulling from it.
func ConsumerConfig(cfg Config, fo *Failover) jetstream.ConsumerConfig {
	return consumerConfig(cfg, fo)
}
