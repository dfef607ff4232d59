package mirror

import (
	"sync"
	"sync/atomic"
	"time"
)

// health is a target's circuit breaker. After maxFails copies in a row
// fail (a transport error or a timeout), the target is unhealthy: its
// copies are dropped at once, before any connection is made, so a dead,
// hung or resetting shadow costs nothing. After failDuration, one copy is
// let through as a probe; its success makes the target healthy again, its
// failure starts another failDuration.
//
// The healthy path takes no lock: one atomic load to admit a copy, and one
// atomic write to record an outcome when the failure count changes.
type health struct {
	maxFails     int64 // 0: never unhealthy
	failDuration time.Duration

	fails     atomic.Int64 // consecutive failures
	unhealthy atomic.Bool

	mu         sync.Mutex
	retryAt    time.Time // when a probe may go
	probing    bool      // a probe is in flight
	transition func(healthy bool)
}

func newHealth(maxFails int, failDuration time.Duration, transition func(healthy bool)) *health {
	return &health{maxFails: int64(max(maxFails, 0)), failDuration: failDuration, transition: transition}
}

// allow reports whether a copy may be sent now, and whether it is the
// probe of an unhealthy target. A probe that is then not sent must be
// given back with cancelProbe.
func (h *health) allow() (ok, probe bool) {
	if !h.unhealthy.Load() {
		return true, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.unhealthy.Load() {
		return true, false
	}
	if h.probing || now().Before(h.retryAt) {
		return false, false
	}
	h.probing = true
	return true, true
}

// cancelProbe gives back a probe that allow granted but was not sent.
func (h *health) cancelProbe() {
	h.mu.Lock()
	h.probing = false
	h.mu.Unlock()
}

// record takes the outcome of a copy that was sent.
func (h *health) record(success, probe bool) {
	if h.maxFails == 0 {
		return
	}
	if success {
		if h.fails.Load() != 0 {
			h.fails.Store(0)
		}
		if h.unhealthy.Load() {
			h.setHealthy(true)
		}
		return
	}
	n := h.fails.Add(1)
	switch {
	case probe:
		h.mu.Lock()
		h.probing = false
		h.retryAt = now().Add(h.failDuration)
		h.mu.Unlock()
	case n >= h.maxFails && !h.unhealthy.Load():
		h.setHealthy(false)
	}
}

func (h *health) setHealthy(healthy bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unhealthy.Load() != healthy {
		return // another copy got here first
	}
	h.unhealthy.Store(!healthy)
	h.probing = false
	h.retryAt = now().Add(h.failDuration)
	if healthy {
		h.fails.Store(0)
	}
	if h.transition != nil {
		h.transition(healthy)
	}
}
