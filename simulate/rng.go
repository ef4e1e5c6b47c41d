package simulate

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// newRand returns a generator for one named stream of a seed, so that each
// part of a scenario draws from its own sequence: adding an attack does not
// change the background or another attack's parameters.
func newRand(seed uint64, stream string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// uniform draws from [lo, hi).
func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

// between draws an integer from [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// chance reports true with probability p.
func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// logNormal draws a log-normal value with the given median and sigma (of
// the underlying normal).
func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(r.NormFloat64()*sigma)
}

// pick returns a random element of s.
func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// seconds converts floating seconds to a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// expGap draws the gap to the next arrival of a Poisson process of rate
// per second.
func expGap(r *rand.Rand, rate float64) time.Duration { return seconds(r.ExpFloat64() / rate) }

// jitterGap draws a gap around 1/rate with log-normal jitter sigma: tools
// pace themselves more regularly than a Poisson process.
func jitterGap(r *rand.Rand, rate, sigma float64) time.Duration {
	return seconds(logNormal(r, 1/rate, sigma))
}

// round3 rounds to three decimals (times in the truth file).
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// round4 rounds to four significant digits (parameters in the truth file).
func round4(v float64) float64 {
	if v == 0 {
		return 0
	}
	scale := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

// spread draws the gap from t to the next of left events placed uniformly
// at random in [t, end): the arrivals of a Poisson process known to hold
// exactly that many events.
func spread(r *rand.Rand, t, end time.Duration, left int) time.Duration {
	if left <= 0 {
		return end - t
	}
	return time.Duration(float64(end-t) * (1 - math.Pow(r.Float64(), 1/float64(left))))
}
