package mirror

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// Concurrency limits how many copies one target may have in flight. The
// limit adapts to what the shadow shows it can serve: it grows while
// copies complete at a steady latency, shrinks when their latency climbs,
// and falls to the floor within about a second when the shadow stops
// answering, so a hanging shadow holds a few connections instead of
// max_in_flight of them. A copy over its target's limit waits for a slot,
// in its own goroutine, for at most max_wait, and is then dropped (outcome
// dropped_concurrency); nothing on the request path waits. The limit, what
// it has learnt and the breaker are the shadow's: a config load keeps
// them (see shadowState).
type Concurrency struct {
	// The least the limit falls to, so that copies keep going to a shadow
	// that stopped answering and its recovery is found again. At least 1.
	// Default: 4, or the ceiling if that is lower.
	Floor int `json:"floor,omitempty"`

	// The most the limit grows to, and the limit itself when fixed. Must
	// not exceed the handler's max_in_flight. Default: the handler's
	// max_in_flight divided equally among its targets, so that no target
	// can take another's slots.
	Ceiling int `json:"ceiling,omitempty"`

	// Turn adaptation off: the limit is always the ceiling, and copies
	// are never cancelled for being late; with one target this is how the
	// mirror behaved before adaptive limits. Default: false (adaptive).
	Fixed bool `json:"fixed,omitempty"`

	// How long a copy over the limit may wait for a slot, off the request
	// path, before it is dropped (dropped_concurrency). A waiting copy
	// holds its buffered body, counted under max_in_flight, and no
	// connection; its timeout starts once it has a slot. -1 (in the
	// Caddyfile, max_wait 0) never waits: a copy over the limit is dropped
	// at once. Default: 1s.
	MaxWait caddy.Duration `json:"max_wait,omitempty"`
}

// validate checks c's configured values against the handler's
// max_in_flight; it changes nothing.
func (c *Concurrency) validate(maxInFlight int) error {
	if c.Floor < 0 {
		return fmt.Errorf("concurrency.floor must be at least 1, got %d", c.Floor)
	}
	if c.Ceiling < 0 {
		return fmt.Errorf("concurrency.ceiling must be at least 1, got %d", c.Ceiling)
	}
	if c.Ceiling > maxInFlight {
		return fmt.Errorf("concurrency.ceiling must not exceed max_in_flight (%d), got %d", maxInFlight, c.Ceiling)
	}
	if c.Ceiling > 0 && c.Floor > c.Ceiling {
		return fmt.Errorf("concurrency.floor (%d) must not exceed concurrency.ceiling (%d)", c.Floor, c.Ceiling)
	}
	if c.MaxWait < -1 {
		return fmt.Errorf("concurrency.max_wait must be -1 (never wait) or a duration, got %v", time.Duration(c.MaxWait))
	}
	return nil
}

// limitSettings are a target's concurrency settings with their defaults
// applied: what each of its replicas' limits is configured with. share is
// the ceiling's default: the target's equal share of max_in_flight.
type limitSettings struct {
	floor, ceiling int
	fixed          bool
	maxWait        time.Duration
}

func (t *Target) limitSettings(share int) limitSettings {
	var c Concurrency
	if t.Concurrency != nil {
		c = *t.Concurrency
	}
	s := limitSettings{ceiling: c.Ceiling, floor: c.Floor, fixed: c.Fixed, maxWait: time.Duration(c.MaxWait)}
	if s.ceiling <= 0 {
		s.ceiling = max(share, 1)
	}
	if s.floor <= 0 {
		s.floor = defaultFloor
	}
	s.floor = min(s.floor, s.ceiling)
	switch c.MaxWait {
	case 0:
		s.maxWait = defaultMaxWait
	case -1:
		s.maxWait = 0
	}
	return s
}

// configureLimit configures replica r's limit with s. Its changes go to
// the target's gauge, the sum of its replicas' limits, and its stalls to
// the log, once each way.
func (t *Target) configureLimit(r *replica, s limitSettings, logger *zap.Logger) {
	label := t.label
	r.state.limit.configure(s.floor, s.ceiling, s.fixed, s.maxWait, func(limit int) {
		r.limitShown.Store(int64(limit))
		t.publishLimits()
	}, func(stalled bool) {
		if stalled {
			logger.Warn("mirror target stopped answering: its concurrency limit falls to the floor and its silent copies are cancelled (cancelled_late)",
				zap.String("target", label), zap.String("replica", r.dial), zap.Int("floor", s.floor))
			return
		}
		logger.Info("mirror target answers again: its concurrency limit grows back", zap.String("target", label), zap.String("replica", r.dial))
	})
}

// publishLimits sets the target's limit gauge to the sum of its
// replicas' limits.
func (t *Target) publishLimits() {
	sum := int64(0)
	for _, r := range t.pool.now() {
		sum += r.limitShown.Load()
	}
	t.limitGauge.Set(float64(sum))
}
