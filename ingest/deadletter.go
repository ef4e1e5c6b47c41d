package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
)

// deadLetterStall is how long storing a dead letter may wait while the
// client has as many unconfirmed publishes as it allows (4,000): a slow
// server holds decoding back rather than failing it, as long as
// waitDeadLetters would wait for a confirmation.
var deadLetterStall = jetstream.WithStallWait(10 * time.Second)

// reject counts a rejected event and copies it, with the reason, to the
// dead-letter stream (only the first DeadLetterMaxBytes of a too_large
// line); its message is settled once JetStream stored it.
func (c *Consumer) reject(rerr *event.RejectError, line []byte) {
	if !c.curCounted {
		c.metrics.Rejected(rerr.Reason)
	}
	m := nats.NewMsg(DeadLetterSubject)
	m.Header.Set(HeaderRejectCode, string(rerr.Reason))
	m.Header.Set(HeaderRejectReason, rerr.Error())
	m.Header.Set(HeaderSubject, c.curSubject)
	if c.curSeq > 0 {
		m.Header.Set(HeaderSequence, strconv.FormatUint(c.curSeq, 10))
		// The same line of the same message, dead-lettered again after a
		// redelivery, is stored once (within the duplicate window).
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("vigil-dead-%d-%d", c.curSeq, rerr.Line))
	}
	if rerr.Reason == event.ReasonTooLarge && len(line) > DeadLetterMaxBytes {
		m.Header.Set(HeaderRejectSize, strconv.Itoa(len(line)))
		n := DeadLetterMaxBytes
		for n > 0 && !utf8.RuneStart(line[n]) { // do not split a character
			n--
		}
		line = line[:n]
	}
	m.Data = append([]byte(nil), line...)
	f, err := c.js.PublishMsgAsync(m, deadLetterStall)
	if err != nil {
		// The chunk is handed back rather than acknowledged: see settle.
		c.cur.deadErr = errors.Join(c.cur.deadErr, fmt.Errorf("store a rejected event in %s: %w", DeadLetterStream, err))
		return
	}
	c.cur.dead = append(c.cur.dead, f)
}

// waitDeadLetters waits until JetStream stored every dead letter of a
// chunk.
func (c *Consumer) waitDeadLetters(dead []jetstream.PubAckFuture) error {
	if len(dead) == 0 {
		return nil
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for _, f := range dead {
		select {
		case ack := <-f.Ok():
			if !ack.Duplicate { // stored before, by an earlier delivery
				c.metrics.DeadLettered()
			}
		case err := <-f.Err():
			return fmt.Errorf("store a rejected event in %s: %w", DeadLetterStream, err)
		case <-t.C:
			return fmt.Errorf("%s did not confirm a rejected event within 10s: check JetStream's storage and the stream's limits (ingest.deadletter_max_bytes)", DeadLetterStream)
		}
	}
	return nil
}
