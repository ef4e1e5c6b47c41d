package simulate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
)

// Config says what to publish: a live scenario (Options, with attacks
// and patterns starting as early as they may) paced on the clock.
type Config struct {
	Options
	Batch int              // events per message (NDJSON); 1 = one event per message
	Now   func() time.Time // the clock: the scenario's start and when each event is due; time.Now when nil
	// Planned, when set, is called with the planned scenario before the
	// first event is published (to show when each attack starts).
	Planned func(*Scenario)
}

// Stats counts what was published.
type Stats struct {
	Events   int
	Messages int
	Errors   int
	ByAttack map[Attack]int
	ByBenign map[Benign]int
	Elapsed  time.Duration
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Batch < 1 || c.Batch > 1000 {
		return errors.New("batch must be 1..1000 events per message")
	}
	o := c.Options
	o.Live = true
	return o.Validate()
}

type pending struct {
	subject string
	ids     []string
	data    []byte
}

// Publish plans a live scenario starting now and sends each event through
// JetStream when its time comes, until cfg.Duration has passed (or the
// scenario has nothing more), or ctx is done; it calls progress about once
// a second. Each message carries Nats-Msg-Id: the event's request id, or
// for a batch emit.BatchID of its ids.
func Publish(ctx context.Context, js jetstream.JetStream, cfg Config, progress func(Stats)) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	o := cfg.Options
	o.Live, o.Start = true, now()
	sc, err := Plan(o)
	if err != nil {
		return Stats{}, err
	}
	if cfg.Planned != nil {
		cfg.Planned(sc)
	}
	p := &publisher{js: js, sc: sc, stream: sc.Stream(), batch: cfg.Batch, batches: map[string]*pending{},
		st: Stats{ByAttack: map[Attack]int{}, ByBenign: map[Benign]int{}}}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastProgress := start
	for more := true; more; {
		select {
		case <-ctx.Done():
			more = false
		case <-tick.C:
			more = p.publishDue(now())
		}
		if progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			p.st.Elapsed = time.Since(start)
			progress(p.st)
		}
	}
	p.flushAll()
	p.st.Elapsed = time.Since(start)
	return p.st, waitAcks(js)
}

// publisher sends a stream's events when they are due.
type publisher struct {
	js      jetstream.JetStream
	sc      *Scenario
	stream  *Stream
	batch   int
	batches map[string]*pending
	ev      event.Event
	tag     int
	have    bool // ev holds the next event, not yet due
	st      Stats
}

// publishDue publishes every event due by now; it reports false when the
// scenario has no more events.
func (p *publisher) publishDue(now time.Time) bool {
	for {
		if !p.have {
			tag, ok := p.stream.Next(&p.ev)
			if !ok {
				return false
			}
			p.tag, p.have = tag, true
		}
		if p.ev.Time.After(now) {
			break
		}
		p.add(&p.ev)
		p.have = false
		if name, attack := p.sc.Item(p.tag); attack {
			p.st.ByAttack[Attack(name)]++
		} else if name != "" {
			p.st.ByBenign[Benign(name)]++
		}
	}
	if p.batch > 1 {
		p.flushAll()
	}
	return true
}

func (p *publisher) add(ev *event.Event) {
	subject := "vigil.events." + ev.Service
	b := p.batches[subject]
	if b == nil {
		b = &pending{subject: subject}
		p.batches[subject] = b
	}
	if len(b.data) > 0 {
		b.data = append(b.data, '\n')
	}
	b.data = ev.AppendJSON(b.data)
	b.ids = append(b.ids, ev.RequestID)
	p.st.Events++
	if len(b.ids) >= p.batch {
		p.flush(b)
	}
}

func (p *publisher) flushAll() {
	for _, subject := range slices.Sorted(maps.Keys(p.batches)) {
		p.flush(p.batches[subject])
	}
}

func (p *publisher) flush(b *pending) {
	if len(b.ids) == 0 {
		return
	}
	m := nats.NewMsg(b.subject)
	m.Data = b.data
	m.Header.Set(jetstream.MsgIDHeader, emit.BatchID(b.ids...)) // the emitter's ids, so both deduplicate alike
	if _, err := p.js.PublishMsgAsync(m); err != nil {
		p.st.Errors++
	} else {
		p.st.Messages++
	}
	b.ids, b.data = b.ids[:0], nil
}

func waitAcks(js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%d messages not acknowledged by JetStream within 30s", js.PublishAsyncPending())
	}
}
