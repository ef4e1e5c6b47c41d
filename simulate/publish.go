package simulate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/emit"
	"github.com/vigil-sec/vigil/event"
)

// Config says what to publish.
type Config struct {
	Rate       float64       // ordinary events per second
	Duration   time.Duration // how long to publish; 0 until ctx is done
	Attacks    []Attack
	AttackRate float64 // events per second of each attack
	Batch      int     // events per message (NDJSON); 1 = one event per message
	Seed       uint64
	Now        func() time.Time // event time source; time.Now when nil
}

// Stats counts what was published.
type Stats struct {
	Events   int
	Messages int
	Errors   int
	ByAttack map[Attack]int
	Elapsed  time.Duration
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Rate < 0 || c.AttackRate < 0:
		return errors.New("rates must not be negative")
	case c.Rate == 0 && (len(c.Attacks) == 0 || c.AttackRate == 0):
		return errors.New("nothing to publish: set --rate or an --attack")
	case c.Batch < 1 || c.Batch > 1000:
		return errors.New("batch must be 1..1000 events per message")
	case c.Duration < 0:
		return errors.New("duration must not be negative")
	}
	return nil
}

type pending struct {
	subject string
	ids     []string
	data    []byte
}

// Publish sends traffic through JetStream until cfg.Duration has passed or
// ctx is done, calling progress about once a second. Each message carries
// Nats-Msg-Id: the event's request id, or for a batch emit.BatchID of its ids.
func Publish(ctx context.Context, js jetstream.JetStream, cfg Config, progress func(Stats)) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	gen := NewGenerator(cfg.Seed, cfg.Attacks)
	st := Stats{ByAttack: map[Attack]int{}}
	start := time.Now()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	batches := map[string]*pending{}
	var ev event.Event
	var normalDue, attackDue float64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastProgress := start
	for {
		select {
		case <-ctx.Done():
			flushAll(js, batches, &st)
			st.Elapsed = time.Since(start)
			return st, waitAcks(js)
		case <-tick.C:
		}
		normalDue += cfg.Rate / 100
		attackDue += cfg.AttackRate / 100
		for ; normalDue >= 1; normalDue-- {
			gen.Normal(now(), &ev)
			add(js, batches, &ev, cfg.Batch, &st)
		}
		for ; attackDue >= 1; attackDue-- {
			for _, a := range cfg.Attacks {
				gen.Attack(a, now(), &ev)
				add(js, batches, &ev, cfg.Batch, &st)
				st.ByAttack[a]++
			}
		}
		if cfg.Batch > 1 {
			flushAll(js, batches, &st)
		}
		if progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			st.Elapsed = time.Since(start)
			progress(st)
		}
	}
}

func add(js jetstream.JetStream, batches map[string]*pending, ev *event.Event, size int, st *Stats) {
	subject := "vigil.events." + ev.Service
	p := batches[subject]
	if p == nil {
		p = &pending{subject: subject}
		batches[subject] = p
	}
	if len(p.data) > 0 {
		p.data = append(p.data, '\n')
	}
	p.data = ev.AppendJSON(p.data)
	p.ids = append(p.ids, ev.RequestID)
	st.Events++
	if len(p.ids) >= size {
		flush(js, p, st)
	}
}

func flushAll(js jetstream.JetStream, batches map[string]*pending, st *Stats) {
	for _, p := range batches {
		flush(js, p, st)
	}
}

func flush(js jetstream.JetStream, p *pending, st *Stats) {
	if len(p.ids) == 0 {
		return
	}
	m := nats.NewMsg(p.subject)
	m.Data = p.data
	m.Header.Set(jetstream.MsgIDHeader, emit.BatchID(p.ids...)) // the emitter's ids, so both deduplicate alike
	if _, err := js.PublishMsgAsync(m); err != nil {
		st.Errors++
	} else {
		st.Messages++
	}
	p.ids, p.data = p.ids[:0], nil
}

func waitAcks(js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%d messages not acknowledged by JetStream within 30s", js.PublishAsyncPending())
	}
}
