package ingest

import (
	"maps"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// reader decodes stored messages of events the one way Vigil reads events
// everywhere: live ingest, the rebuild of detection windows, a standby's
// following and vigil replay. A message's subject names the service its
// events must be from, the future-skew limit is judged against when
// JetStream stored it, and each valid event's Received is that time, so
// that an engine fed the same messages moves its watermark the same way
// whichever path fed them.
//
// The decoder aliases: events' strings point into the message's data,
// which must not change while they are in use.
type reader struct {
	dec      *event.Decoder
	received time.Time
	to       *[]event.Event
	keepFn   func(*event.Event) // r.keep, bound once
}

func newReader(limits event.Limits) *reader {
	d := event.NewDecoder(limits)
	d.SetAliasing(true)
	r := &reader{dec: d}
	r.keepFn = r.keep
	return r
}

// read decodes data, a message stored on subject at `at`, appending each
// valid event to *to and passing each rejected line to reject. A zero
// `at` (events not read from the stream) applies no future-skew limit; an
// empty subject requires no service.
func (r *reader) read(data []byte, subject string, at time.Time, to *[]event.Event,
	reject func(*event.RejectError, []byte)) (valid, rejected int) {
	r.received, r.to = at, to
	valid, rejected = r.dec.DecodeMessage(data, subjectService(subject), at, r.keepFn, reject)
	r.to = nil
	return valid, rejected
}

// keep appends a copy of ev; the decoder reuses ev and its Attrs map.
func (r *reader) keep(ev *event.Event) {
	ev.Received = r.received
	*r.to = append(*r.to, *ev)
	if ev.Attrs != nil {
		(*r.to)[len(*r.to)-1].Attrs = maps.Clone(ev.Attrs)
	}
}

// Replayer applies stored messages of events to a Sink, in order, the way
// live ingest applies them (see reader), but without acknowledging or
// counting anything: the rebuild of detection windows at start-up and
// reload, a cluster standby's following and vigil replay all use it. The
// caller decodes; a second goroutine applies, so that a replay uses two
// cores. Call Close when done.
type Replayer struct {
	rd   *reader
	sink Sink
	cur  []event.Event
	full chan []event.Event
	free chan []event.Event
	done chan struct{}
	shut bool
}

const (
	replayBatch   = 1024 // events handed to the applying goroutine at once
	replayBatches = 4
)

// NewReplayer returns a Replayer that decodes with limits and applies to
// sink.
func NewReplayer(limits event.Limits, sink Sink) *Replayer {
	r := &Replayer{
		rd: newReader(limits), sink: sink,
		full: make(chan []event.Event, replayBatches), free: make(chan []event.Event, replayBatches),
		done: make(chan struct{}),
	}
	for range replayBatches - 1 {
		r.free <- make([]event.Event, 0, replayBatch)
	}
	r.cur = make([]event.Event, 0, replayBatch)
	go r.apply()
	return r
}

func (r *Replayer) apply() {
	defer close(r.done)
	for evs := range r.full {
		for i := range evs {
			r.sink.Process(&evs[i])
		}
		clear(evs) // do not keep the messages' data alive
		r.free <- evs[:0]
	}
}

// Message decodes data, a message stored on subject at `at` (see
// reader.read), and queues its valid events to be applied; reject, when
// not nil, gets each rejected line. data must not change until Close
// returns: the events point into it.
func (r *Replayer) Message(data []byte, subject string, at time.Time, reject func(*event.RejectError, []byte)) (valid, rejected int) {
	if reject == nil {
		reject = ignoreRejected
	}
	valid, rejected = r.rd.read(data, subject, at, &r.cur, reject)
	if len(r.cur) >= replayBatch {
		r.full <- r.cur
		r.cur = <-r.free
	}
	return valid, rejected
}

func ignoreRejected(*event.RejectError, []byte) {}

// Close applies what is queued and waits until every event was applied;
// later calls do nothing.
func (r *Replayer) Close() {
	if r.shut {
		return
	}
	r.shut = true
	if len(r.cur) > 0 {
		r.full <- r.cur
		r.cur = nil
	}
	close(r.full)
	<-r.done
}
