package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/notify"
)

// The dead-letter streams, as --stream names them.
const (
	streamEvents = "events" // rejected events, ingest.DeadLetterStream
	streamNotify = "notify" // notifications that finally failed, notify.DeadLetterStream
)

// deadLetter is what list and count read of one dead letter: its headers.
// A rejected event has a reason code and the subject it came on; a failed
// notification has its receiver and the number of attempts.
type deadLetter struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Code     string    `json:"reason_code,omitempty"`
	Reason   string    `json:"reason"`
	Subject  string    `json:"subject,omitempty"`
	EventSeq string    `json:"events_seq,omitempty"`
	Size     int       `json:"size"` // of the stored payload
	// Omitted is set on the record that ends the dead letters of a message
	// with more rejected lines than ingest stores (code "omitted"): how
	// many of them were counted but not stored.
	Omitted  int    `json:"omitted_lines,omitempty"`
	Receiver string `json:"receiver,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
}

func deadLetterOf(m jetstream.Msg) (deadLetter, error) {
	meta, err := m.Metadata()
	if err != nil {
		return deadLetter{}, err
	}
	h := m.Headers()
	size, _ := strconv.Atoi(h.Get(nats.MsgSize))
	omitted, _ := strconv.Atoi(h.Get(ingest.HeaderOmittedLines))
	attempts, _ := strconv.Atoi(h.Get(notify.HeaderAttempts))
	return deadLetter{
		Seq: meta.Sequence.Stream, Time: meta.Timestamp.UTC(), Code: h.Get(ingest.HeaderRejectCode),
		Reason:  cmp.Or(h.Get(ingest.HeaderRejectReason), h.Get(notify.HeaderReason)),
		Subject: h.Get(ingest.HeaderSubject), EventSeq: h.Get(ingest.HeaderSequence), Size: size,
		Omitted: omitted, Receiver: h.Get(notify.HeaderReceiver), Attempts: attempts,
	}, nil
}

// dlFlags are the flags every subcommand shares.
type dlFlags struct {
	conn   natsClientFlags
	since  time.Duration
	stream string // streamEvents or streamNotify
}

func (f *dlFlags) register(fs *flag.FlagSet, since bool) {
	f.conn.register(fs)
	fs.StringVar(&f.stream, "stream", streamEvents, "which dead letters: `events` (rejected events, "+ingest.DeadLetterStream+
		") or notify (notifications that finally failed, "+notify.DeadLetterStream+")")
	if since {
		fs.DurationVar(&f.since, "since", 0, "only dead letters stored within this `duration`, e.g. 1h (default: all)")
	}
}

// notify reports whether --stream names the failed notifications.
func (f *dlFlags) notify() bool { return f.stream == streamNotify }

// open connects and returns the dead-letter stream --stream names; call the
// returned function when done.
func (f *dlFlags) open(ctx context.Context) (jetstream.JetStream, jetstream.Stream, func(), error) {
	name := ingest.DeadLetterStream
	switch f.stream {
	case streamEvents:
	case streamNotify:
		name = notify.DeadLetterStream
	default:
		return nil, nil, nil, usageError(fmt.Sprintf("--stream %q: use %s or %s", f.stream, streamEvents, streamNotify))
	}
	nc, err := f.conn.connect("vigil-deadletters")
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("stream %s not found: has Vigil run against this NATS? (--nats-url, --config)", name)
	}
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return js, st, nc.Close, nil
}

// scan calls fn with each dead letter's headers, from start (or since ago),
// up to the last one stored when the scan began.
func scan(ctx context.Context, st jetstream.Stream, start uint64, since time.Duration, fn func(deadLetter)) error {
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 || info.State.LastSeq < start {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: true, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(start, 1)}
	if since > 0 {
		from := time.Now().Add(-since)
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &from
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			dl, err := deadLetterOf(m)
			if err != nil {
				return err
			}
			fn(dl)
			if meta, _ := m.Metadata(); dl.Seq >= last || meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 { // nothing (left) in the window asked for
			return nil
		}
	}
}
