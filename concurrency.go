package mirror

import (
	"fmt"
	"time"
)

// Concurrency limits how many copies one target may have in flight. The
// limit adapts to what the shadow shows it can serve: it grows while
// copies complete at a steady latency, shrinks when their latency climbs,
// and falls to the floor within about a second when the shadow stops
// answering, so a hanging shadow holds a few connections instead of
// max_in_flight of them. A copy over its target's limit is dropped at once
// (outcome dropped_concurrency); nothing on the request path waits.
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
	return nil
}

// provisionConcurrency sets up t's concurrency limit. share is the
// ceiling's default: the target's equal share of max_in_flight.
func (t *Target) provisionConcurrency(share int) {
	var c Concurrency
	if t.Concurrency != nil {
		c = *t.Concurrency
	}
	ceiling := c.Ceiling
	if ceiling <= 0 {
		ceiling = max(share, 1)
	}
	floor := c.Floor
	if floor <= 0 {
		floor = defaultFloor
	}
	floor = min(floor, ceiling)
	t.limit = newConcurrencyLimit(floor, ceiling, c.Fixed, func() time.Time { return now() }, func(limit int) {
		t.limitGauge.Set(float64(limit))
	})
}
