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

// reject records a rejected event for counting, and copies the first
// MaxDeadLetters rejected lines of a message, with their reasons, to the
// dead-letter stream (only the first DeadLetterMaxBytes of a too_large
// line); its message is settled once JetStream stored them.
func (c *Consumer) reject(rerr *event.RejectError, line []byte) {
	c.cur.rejected[rerr.Reason]++
	c.curRejected++
	if c.curRejected > MaxDeadLetters {
		return // counted; deadLetterRest sums these up
	}
	m := c.deadLetter(string(rerr.Reason), rerr.Error(), strconv.Itoa(rerr.Line))
	if rerr.Reason == event.ReasonTooLarge && len(line) > DeadLetterMaxBytes {
		m.Header.Set(HeaderRejectSize, strconv.Itoa(len(line)))
		n := DeadLetterMaxBytes
		for n > 0 && !utf8.RuneStart(line[n]) { // do not split a character
			n--
		}
		line = line[:n]
	}
	m.Data = append([]byte(nil), line...)
	c.publishDeadLetter(m)
}

// deadLetterRest stores the record that ends the dead letters of a message
// with more than MaxDeadLetters rejected lines: how many there were, how
// many were not stored, and where the whole message is.
func (c *Consumer) deadLetterRest() {
	omitted := c.curRejected - MaxDeadLetters
	where := "the whole message is not stored in " + EventsStream
	if c.curSeq > 0 {
		where = fmt.Sprintf("the whole message is message %d of %s (vigil deadletters show --original prints it with this record)", c.curSeq, EventsStream)
	}
	m := c.deadLetter(RejectCodeOmitted, fmt.Sprintf("%d more rejected lines of this message are not stored (%d rejected in all; the first %d are the dead letters before this one); %s",
		omitted, c.curRejected, MaxDeadLetters, where), "rest")
	m.Header.Set(HeaderRejectedLines, strconv.Itoa(c.curRejected))
	m.Header.Set(HeaderOmittedLines, strconv.Itoa(omitted))
	c.publishDeadLetter(m)
}

// deadLetter returns a dead letter of the current message with code and
// reason; part names it among the message's dead letters, for its
// Nats-Msg-Id.
func (c *Consumer) deadLetter(code, reason, part string) *nats.Msg {
	m := nats.NewMsg(DeadLetterSubject)
	m.Header.Set(HeaderRejectCode, code)
	m.Header.Set(HeaderRejectReason, reason)
	m.Header.Set(HeaderSubject, c.curSubject)
	if c.curSeq > 0 {
		m.Header.Set(HeaderSequence, strconv.FormatUint(c.curSeq, 10))
		// The same line of the same message, dead-lettered again after a
		// redelivery, is stored once (within the duplicate window).
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("vigil-dead-%d-%s", c.curSeq, part))
	}
	return m
}

// publishDeadLetter stores m in the dead-letter stream without waiting;
// settle waits for JetStream's confirmation.
func (c *Consumer) publishDeadLetter(m *nats.Msg) {
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
			// Not when stored before, by an earlier delivery; and the
			// record of omitted lines is not an event.
			if !ack.Duplicate && f.Msg().Header.Get(HeaderRejectCode) != RejectCodeOmitted {
				c.metrics.DeadLettered()
			}
		case err := <-f.Err():
			return fmt.Errorf("store a rejected event in %s: %w", DeadLetterStream, err)
		case <-t.C:
			return fmt.Errorf("%s did not confirm a rejected event within 10s: check JetStream's storage and the stream's limits (ingest.dead_letter_max_bytes)", DeadLetterStream)
		}
	}
	return nil
}
