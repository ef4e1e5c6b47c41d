package ingest

import "time"

// SetTiming shortens how often the consumer asks the server for its state
// and the grace after connecting, so that tests of CaughtUp run fast.
func (c *Consumer) SetTiming(poll, grace time.Duration) {
	c.pollEvery = poll
	c.progress.grace = grace
}

// BeforeSettle makes the consumer call f with a chunk's stream sequences
// before it settles the chunk, so that a test can hold settling back.
func (c *Consumer) BeforeSettle(f func(seqs []uint64)) { c.beforeSettle = f }
