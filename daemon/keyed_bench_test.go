//go:build unix

package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-sec/vigil/event"
	"github.com/vigil-sec/vigil/ingest"
	"github.com/vigil-sec/vigil/internal/testkit"
	"github.com/vigil-sec/vigil/rules"
)

// BenchmarkKeyedRouter measures what issue 17's keyed streams would cost
// the transport, on the backlog BenchmarkClusterThroughput drains (its
// single setup: one embedded NATS server), without building the router
// into Vigil. In each iteration, on the same stream of 1,000,000 events:
//
//   - ceiling: the ack-only consumer of BenchmarkClusterThroughput;
//   - today: a consumer configured as Vigil's that decodes every message
//     (event.Decoder, as ingest does) and acknowledges it: one delivery
//     and one decode per event, what today's path costs besides detection;
//   - router: the design's router. A durable consumer on VIGIL_EVENTS;
//     per chunk of keyedChunk source messages it decodes the events and,
//     for each key family of the shipped rules' group_by, appends each
//     event that has that family's key (as JSON) to the batch of partition
//     hash(key) mod keyedPartitions, publishes each non-empty batch to
//     vigil.keyed.<family>.<p> on stream VIGIL_KEYED with Nats-Msg-Id
//     "<first source seq>.<family>.<p>", asynchronously, waits for every
//     publish of the chunk to be acknowledged, then acknowledges the
//     chunk's source messages;
//   - owners: one consumer reading every keyed subject back, decoding and
//     acknowledging each message: what the partition owners together
//     would receive, before detecting anything.
//
// Times are the server's record (a durable consumer's creation to its
// last acknowledgement); CPU is this process's, nats-server included, as
// in BenchmarkClusterThroughput, per source event. Not measured: the
// owners' detection, a partition's handover, the alert stage. Run with
// -benchtime 1x; VIGIL_BENCH_EVENTS sets the events,
// VIGIL_BENCH_CHUNK the source messages per router chunk (default 100),
// and VIGIL_BENCH_FAMILIES (comma-separated, e.g. "source_ip,user") routes
// to only those families:
//
//	go test ./daemon -run '^$' -bench KeyedRouter -benchtime 1x -count 5
func BenchmarkKeyedRouter(b *testing.B) {
	n := tputEvents()
	chunk := 100
	if v, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_CHUNK")); err == nil && v > 0 {
		chunk = v
	}
	fams := keyedFamilies(b)
	if v := os.Getenv("VIGIL_BENCH_FAMILIES"); v != "" {
		fams = keyedOnly(b, fams, strings.Split(v, ","))
	}
	for range b.N {
		benchKeyed(b, n, chunk, fams)
	}
}

const (
	keyedStream     = "VIGIL_KEYED"
	keyedPrefix     = "vigil.keyed."
	keyedPartitions = 16
	// keyedPullBytes bounds a pull of the router and of the owners in
	// bytes, as ingest bounds its live pulls (livePullBytes), so that
	// neither is closed as a slow consumer.
	keyedPullBytes = 16 << 20
)

// keyedFamily is one key family: the distinct group_by of some rules,
// its fields sorted, named by them joined with "+".
type keyedFamily struct {
	name   string
	fields []string
}

// keyedFamilies derives the key families from the shipped rules.
func keyedFamilies(b *testing.B) []keyedFamily {
	rs, err := rules.Load("")
	if err != nil {
		b.Fatal(err)
	}
	var out []keyedFamily
	for _, r := range rs {
		fields := slices.Sorted(slices.Values(r.GroupBy))
		name := strings.Join(fields, "+")
		if slices.ContainsFunc(out, func(f keyedFamily) bool { return f.name == name }) {
			continue
		}
		for _, f := range fields {
			if !keyedField(f) {
				b.Fatalf("rule %s groups by %q, which the benchmark's router has no key for: add it to appendKeyField", r.Name, f)
			}
		}
		out = append(out, keyedFamily{name: name, fields: fields})
	}
	slices.SortFunc(out, func(x, y keyedFamily) int { return strings.Compare(x.name, y.name) })
	return out
}

// keyedOnly is the families of fams named in names.
func keyedOnly(b *testing.B, fams []keyedFamily, names []string) []keyedFamily {
	var out []keyedFamily
	for _, name := range names {
		i := slices.IndexFunc(fams, func(f keyedFamily) bool { return f.name == name })
		if i < 0 {
			var known []string
			for _, f := range fams {
				known = append(known, f.name)
			}
			b.Fatalf("VIGIL_BENCH_FAMILIES names %q, which is no key family of the shipped rules; use some of %s", name, strings.Join(known, ", "))
		}
		out = append(out, fams[i])
	}
	return out
}

// keyedField reports whether appendKeyField knows field f.
func keyedField(f string) bool {
	return slices.Contains([]string{"source_ip", "source_prefix", "user", "client_id", "service", "endpoint"}, f)
}

// appendKeyField appends event field f's part of a partition key, as
// detect encodes group keys; false when the event has no value for it (it
// belongs to no group of that family). source_prefix uses the default
// network sizes, /24 and /64.
func appendKeyField(dst []byte, f string, ev *event.Event) ([]byte, bool) {
	var s string
	switch f {
	case "source_ip", "source_prefix":
		a := ev.SourceIP.Unmap()
		if !a.IsValid() {
			return dst, false
		}
		if f == "source_prefix" {
			bits := 64
			if a.Is4() {
				bits = 24
			}
			p, _ := a.Prefix(bits)
			a, dst = p.Addr(), append(dst, byte(bits))
		}
		b := a.As16()
		return append(dst, b[:]...), true
	case "user":
		s = ev.User
	case "client_id":
		s = ev.ClientID
	case "service":
		s = ev.Service
	case "endpoint":
		s = ev.Endpoint
	}
	if s == "" {
		return dst, false
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...), true
}

func benchKeyed(b *testing.B, n, chunk int, fams []keyedFamily) {
	d, err := New(context.Background(), tputConfig(b), Options{Version: "bench", Stdout: io.Discard, Logger: tputLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	nc, js := testkit.ConnectURL(b, d.NATSURL())
	defer nc.Close()
	ctx := b.Context()
	_, last, ceil, ceilCPU := tputBacklog(ctx, b, js, 1, n)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: keyedStream, Subjects: []string{keyedPrefix + ">"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: 25 * time.Hour, Duplicates: 2 * time.Minute,
	}); err != nil {
		b.Fatal(err)
	}

	icfg := ingest.DefaultConfig()
	var decoded atomic.Int64
	dec := event.NewDecoder(icfg.Limits())
	dec.SetAliasing(true)
	decodeAndAck := func(m jetstream.Msg) {
		meta, _ := m.Metadata()
		service, ok := strings.CutPrefix(m.Subject(), ingest.SubjectPrefix)
		if !ok {
			service = "" // a keyed subject names no service
		}
		valid, _ := dec.DecodeMessage(m.Data(), service, meta.Timestamp,
			func(*event.Event) {}, func(*event.RejectError, []byte) {})
		decoded.Add(int64(valid))
		_ = m.Ack()
	}
	pull := jetstream.PullMaxMessagesWithBytesLimit(icfg.FetchBatch, keyedPullBytes)
	cpu0 := cpuTime()
	today := tputConsume(ctx, b, js, ingest.EventsStream, "today", last, decodeAndAck, pull)
	todayCPU := cpuTime() - cpu0
	if v := decoded.Swap(0); v != int64(n) {
		b.Logf("today's consumer decoded %d events, want %d", v, n)
	}

	cpu0 = cpuTime()
	r := runKeyedRouter(ctx, b, d.NATSURL(), fams, chunk, last)
	route := tputDrainedOn(ctx, b, js, ingest.EventsStream, "router", last)
	r.wait(b)
	routeCPU := cpuTime() - cpu0
	if r.rejected != 0 {
		b.Logf("the router rejected %d events, want none", r.rejected)
	}

	keyed := streamState(ctx, b, js, keyedStream)
	events := streamState(ctx, b, js, ingest.EventsStream)
	cpu0 = cpuTime()
	owners := tputConsume(ctx, b, js, keyedStream, "owners", keyed.LastSeq, func(m jetstream.Msg) { _ = m.Ack() }, pull)
	ownersCPU := cpuTime() - cpu0
	cpu0 = cpuTime()
	tputConsume(ctx, b, js, keyedStream, "owners-decoding", keyed.LastSeq, decodeAndAck, pull)
	ownersDecCPU := cpuTime() - cpu0
	if decoded.Load() != r.copies {
		// Reported, not failed: a failed benchmark prints no figures.
		b.Logf("the owners decoded %d events, the router published %d", decoded.Load(), r.copies)
	}

	b.Log(r.spread(fams))
	perEvent := func(t time.Duration) float64 { return t.Seconds() * 1e6 / float64(n) }
	b.ReportMetric(float64(r.copies-decoded.Load()), "keyed-events-missing")
	b.ReportMetric(float64(tputSlowConsumers(b, d.ns)), "slow-consumers")
	b.ReportMetric(float64(n)/ceil.Seconds(), "ceiling-events/s")
	b.ReportMetric(float64(n)/today.Seconds(), "today-events/s")
	b.ReportMetric(float64(n)/route.Seconds(), "routed-events/s")
	b.ReportMetric(100*ceil.Seconds()/route.Seconds(), "%-of-ceiling")
	b.ReportMetric(float64(n)/owners.Seconds(), "owners-events/s")
	b.ReportMetric(perEvent(ceilCPU), "ceiling-cpu-us/event")
	b.ReportMetric(perEvent(todayCPU), "today-cpu-us/event")
	b.ReportMetric(perEvent(routeCPU), "router-cpu-us/event")
	b.ReportMetric(perEvent(ownersCPU), "owners-cpu-us/event")
	b.ReportMetric(perEvent(ownersDecCPU), "owners-decoding-cpu-us/event")
	b.ReportMetric(perEvent(routeCPU+ownersCPU), "keyed-transport-cpu-us/event")
	b.ReportMetric(perEvent(routeCPU+ownersDecCPU-todayCPU), "keyed-extra-cpu-us/event")
	b.ReportMetric(float64(keyed.Bytes)/float64(events.Bytes), "keyed/events-bytes")
	b.ReportMetric(float64(keyed.Msgs)/float64(events.Msgs), "keyed-msgs/msg")
	b.ReportMetric(float64(r.copies)/float64(n), "copies/event")
}

// streamState is the state of stream name.
func streamState(ctx context.Context, b *testing.B, js jetstream.JetStream, name string) jetstream.StreamState {
	s, err := js.Stream(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State
}

// keyedBatch is the NDJSON batch of one partition of one family.
type keyedBatch struct {
	data   []byte
	parts  int // messages published for it in this chunk
	events int // events, over the whole run
}

// keyedRouter is the design's router, on its own connection.
type keyedRouter struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	fams    []keyedFamily
	dec     *event.Decoder
	batches [][keyedPartitions]keyedBatch // per family
	max     int                           // bytes of one keyed message
	line    []byte                        // the event being routed, as JSON
	key     []byte
	first   uint64 // the chunk's first source sequence
	futs    []jetstream.PubAckFuture
	sent    [][]byte // buffers of the chunk's publishes, reused once acknowledged
	free    [][]byte
	err     error // the first publish error of the chunk
	done    chan error

	rejected, copies int64
}

// runKeyedRouter starts the router on VIGIL_EVENTS of the server at url;
// it stops after acknowledging the message at sequence last.
func runKeyedRouter(ctx context.Context, b *testing.B, url string, fams []keyedFamily, chunk int, last uint64) *keyedRouter {
	nc, js := testkit.ConnectURL(b, url)
	icfg := ingest.DefaultConfig()
	cons, err := js.CreateOrUpdateConsumer(ctx, ingest.EventsStream, jetstream.ConsumerConfig{
		Durable: "router", DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: icfg.AckWait, MaxAckPending: icfg.MaxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &keyedRouter{nc: nc, js: js, fams: fams, dec: event.NewDecoder(icfg.Limits()),
		batches: make([][keyedPartitions]keyedBatch, len(fams)), max: int(nc.MaxPayload()) - 1024, done: make(chan error, 1)}
	r.dec.SetAliasing(true)
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(icfg.FetchBatch, keyedPullBytes))
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer it.Stop()
		r.done <- r.run(ctx, it, chunk, last)
	}()
	return r
}

// run routes chunks of messages from it until it has acknowledged the
// message at sequence last.
func (r *keyedRouter) run(ctx context.Context, it jetstream.MessagesContext, chunk int, last uint64) error {
	var msgs []jetstream.Msg
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			r.first = meta.Sequence.Stream
		}
		msgs = append(msgs, m)
		r.decode(m, meta.Timestamp)
		if len(msgs) < chunk && meta.Sequence.Stream < last {
			continue
		}
		if err := r.publish(ctx); err != nil {
			return err
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				return err
			}
		}
		if meta.Sequence.Stream >= last {
			return nil
		}
		msgs = msgs[:0]
	}
}

// decode appends the message's events to their partitions' batches.
func (r *keyedRouter) decode(m jetstream.Msg, at time.Time) {
	r.dec.DecodeMessage(m.Data(), strings.TrimPrefix(m.Subject(), ingest.SubjectPrefix), at, r.route,
		func(*event.RejectError, []byte) { r.rejected++ })
}

// route appends ev to the batch of its partition in each family it has a
// key for, publishing a batch that would grow past one message.
func (r *keyedRouter) route(ev *event.Event) {
	r.line = ev.AppendJSON(r.line[:0])
	for fi, f := range r.fams {
		r.key = r.key[:0]
		ok := true
		for _, field := range f.fields {
			if r.key, ok = appendKeyField(r.key, field, ev); !ok {
				break
			}
		}
		if !ok {
			continue
		}
		p := xxhash.Sum64(r.key) % keyedPartitions
		bt := &r.batches[fi][p]
		if len(bt.data) > 0 && len(bt.data)+1+len(r.line) > r.max {
			r.send(fi, int(p))
		}
		if len(bt.data) > 0 {
			bt.data = append(bt.data, '\n')
		} else if bt.data == nil && len(r.free) > 0 {
			bt.data, r.free = r.free[len(r.free)-1][:0], r.free[:len(r.free)-1]
		}
		bt.data = append(bt.data, r.line...)
		bt.events++
		r.copies++
	}
}

// send publishes the batch of family fi's partition p asynchronously.
// Its buffer is reused only after publish has waited for the acks.
func (r *keyedRouter) send(fi, p int) {
	bt := &r.batches[fi][p]
	id := fmt.Sprintf("%d.%s.%d", r.first, r.fams[fi].name, p)
	if bt.parts > 0 { // a batch too large for one message
		id += "." + strconv.Itoa(bt.parts)
	}
	m := nats.NewMsg(keyedPrefix + r.fams[fi].name + "." + strconv.Itoa(p))
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = bt.data
	f, err := r.js.PublishMsgAsync(m)
	if err != nil && r.err == nil {
		r.err = err
	}
	if f != nil {
		r.futs = append(r.futs, f)
	}
	bt.parts++
	r.sent = append(r.sent, bt.data)
	bt.data = nil
}

// publish sends every non-empty batch and waits until each publish of the
// chunk is acknowledged.
func (r *keyedRouter) publish(ctx context.Context) error {
	for fi := range r.batches {
		for p := range r.batches[fi] {
			if len(r.batches[fi][p].data) > 0 {
				r.send(fi, p)
			}
		}
	}
	for _, f := range r.futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.futs = r.futs[:0]
	r.free, r.sent = append(r.free, r.sent...), r.sent[:0]
	for fi := range r.batches {
		for p := range r.batches[fi] {
			r.batches[fi][p].parts = 0
		}
	}
	err := r.err
	r.err = nil
	return err
}

// wait waits for the router to stop and closes its connection.
func (r *keyedRouter) wait(b *testing.B) {
	defer r.nc.Close()
	select {
	case err := <-r.done:
		if err != nil {
			b.Errorf("router: %v", err)
		}
	case <-time.After(time.Minute):
		b.Fatal("the router did not stop within a minute of acknowledging every message")
	}
}

// spread says, per family, how many events the router published and what
// share of them its busiest partition got.
func (r *keyedRouter) spread(fams []keyedFamily) string {
	var sb strings.Builder
	sb.WriteString("keyed events per family (busiest partition's share):")
	for fi, f := range fams {
		total, busiest := 0, 0
		for _, bt := range r.batches[fi] {
			total += bt.events
			busiest = max(busiest, bt.events)
		}
		share := 0.0
		if total > 0 {
			share = 100 * float64(busiest) / float64(total)
		}
		fmt.Fprintf(&sb, " %s %d (%.0f %%);", f.name, total, share)
	}
	return sb.String()
}
