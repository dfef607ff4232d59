package mirror

import (
	"math"
	weakrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/time/rate"

	"github.com/caddyserver/caddy/v2"
)

// sampler decides which of a target's candidate requests are copied: a
// percentage, random or sticky by key, and a rate cap.
type sampler struct {
	// threshold is percent as a fraction of 2^64: a request is in the
	// sample when its 64-bit draw is below it, so 0 selects nothing. all
	// is used for 100%, which the threshold cannot express.
	threshold uint64
	all       bool

	key     string        // sample_by placeholder; "" for random
	limiter *rate.Limiter // nil when there is no cap
	clock   func() time.Time
}

func newSampler(percent *float64, key string, maxRate float64, clock func() time.Time) *sampler {
	s := &sampler{key: key, clock: clock}
	switch {
	case percent == nil || *percent/100 >= 1:
		s.all = true
	case *percent > 0:
		// scaling a fraction below 1 by a power of two stays below 2^64
		s.threshold = uint64(*percent / 100 * math.Exp2(64))
	}
	if maxRate > 0 {
		// one second's worth of burst, and at least one token
		s.limiter = rate.NewLimiter(rate.Limit(maxRate), max(1, int(math.Ceil(maxRate))))
	}
	return s
}

// off reports whether the sampler never selects anything.
func (s *sampler) off() bool {
	return !s.all && s.threshold == 0
}

// sampled reports whether r falls within the sample. With a key, the
// decision is a hash of the key's value for r, so it is the same for every
// request (and every Caddy instance) that has that value; an empty value
// falls back to a random draw.
func (s *sampler) sampled(r *http.Request) bool {
	if s.all {
		return true
	}
	if s.key != "" {
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if repl != nil {
			if v := repl.ReplaceAll(s.key, ""); v != "" {
				return s.inSample(xxhash.Sum64String(v))
			}
		}
	}
	return s.inSample(weakrand.Uint64())
}

// inSample reports whether a uniformly distributed 64-bit draw falls
// within the sample.
func (s *sampler) inSample(draw uint64) bool {
	return s.all || draw < s.threshold
}

// allow takes a token from the rate cap, reporting false when there is
// none left. It never waits.
func (s *sampler) allow() bool {
	return s.limiter == nil || s.limiter.AllowN(s.clock(), 1)
}
