package detect

import (
	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// Percentiles use DDSketch (github.com/DataDog/sketches-go): one sketch per
// fine bucket of a percentile condition's window (12 buckets a window),
// merged when the condition is evaluated. A DDSketch answers any quantile
// within a relative error (2 % here) of the true value, merges exactly, and
// its size depends on the spread of the values, not their number: latencies
// from 1 ms to 60 s need at most about 280 bins, and the paginated store
// keeps only the pages in use, typically a few hundred bytes a bucket.

const sketchAccuracy = 0.02

// sketchCodec makes, decodes and merges the engine's sketches; it holds the
// scratch sketch merges use, so it belongs to one engine (under its lock).
type sketchCodec struct {
	mapping mapping.IndexMapping
	scratch *ddsketch.DDSketch
}

func newSketchCodec() *sketchCodec {
	m, err := mapping.NewLogarithmicMapping(sketchAccuracy)
	if err != nil {
		panic(err) // a constant accuracy in (0, 1) is always valid
	}
	c := &sketchCodec{mapping: m}
	c.scratch = c.newSketch()
	return c
}

func (c *sketchCodec) newSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketchFromStoreProvider(c.mapping, store.BufferedPaginatedStoreConstructor)
}

func (c *sketchCodec) decode(b []byte) (*ddsketch.DDSketch, error) {
	return ddsketch.DecodeDDSketch(b, store.BufferedPaginatedStoreConstructor, c.mapping)
}

// quantile merges the sketches of buckets lo..hi and returns their q
// quantile; ok is false when they hold no value.
func (c *sketchCodec) quantile(sks []sketchBucket, lo, hi int64, q float64) (float64, bool) {
	c.scratch.Clear()
	for _, sb := range sks {
		if sb.idx >= lo && sb.idx <= hi {
			if err := c.scratch.MergeWith(sb.sk); err != nil {
				return 0, false
			}
		}
	}
	if c.scratch.IsEmpty() {
		return 0, false
	}
	v, err := c.scratch.GetValueAtQuantile(q)
	return v, err == nil
}

// addValue adds v to the sketch of bucket k, creating it in order.
func (c *sketchCodec) addValue(s *groupState, k int64, v float64) {
	i := len(s.sketches)
	for i > 0 && s.sketches[i-1].idx > k {
		i--
	}
	if i == 0 || s.sketches[i-1].idx != k {
		s.sketches = append(s.sketches, sketchBucket{})
		copy(s.sketches[i+1:], s.sketches[i:])
		s.sketches[i] = sketchBucket{idx: k, sk: c.newSketch()}
		i++
	}
	_ = s.sketches[i-1].sk.Add(max(v, 0))
}
