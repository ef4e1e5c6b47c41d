package simulate

import (
	"math"
	"time"

	"github.com/vigil-sec/vigil/event"
)

// never is the next time of a stepper that has nothing left to emit.
const never = time.Duration(math.MaxInt64)

// A stepper produces events in time order: next is the offset from the
// scenario's start of its next event (never when it is done), and emit
// fills that event (after the caller has reset it) and advances. Every
// source of a scenario is a stepper: the background, each attack, each
// benign pattern, and inside them each user session.
type stepper interface {
	next() time.Duration
	emit(ev *event.Event)
}

// entry is a stepper waiting in a queue at its next time.
type entry struct {
	at  time.Duration
	ord uint64 // insertion order: ties leave in a fixed order
	tag int
	s   stepper
}

// queue is a min-heap of steppers by next time: the merge of several
// time-ordered streams into one, holding one entry per stepper.
type queue struct {
	h   []entry
	ord uint64
}

// add queues s unless it is done; tag travels with its events.
func (q *queue) add(s stepper, tag int) {
	at := s.next()
	if at == never {
		return
	}
	q.ord++
	q.h = append(q.h, entry{at: at, ord: q.ord, tag: tag, s: s})
	q.up(len(q.h) - 1)
}

// peek returns the time of the earliest event, never when empty.
func (q *queue) peek() time.Duration {
	if len(q.h) == 0 {
		return never
	}
	return q.h[0].at
}

// pop emits the earliest event into ev, requeues its stepper and returns
// its tag.
func (q *queue) pop(ev *event.Event) int {
	top := &q.h[0]
	top.s.emit(ev)
	tag := top.tag
	if at := top.s.next(); at != never {
		q.ord++
		top.at, top.ord = at, q.ord
	} else {
		last := len(q.h) - 1
		q.h[0] = q.h[last]
		q.h[last] = entry{}
		q.h = q.h[:last]
	}
	q.down(0)
	return tag
}

func (q *queue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	return a.at < b.at || a.at == b.at && a.ord < b.ord
}

func (q *queue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *queue) down(i int) {
	n := len(q.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
}
