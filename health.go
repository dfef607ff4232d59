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
// Admitting a copy, which happens on the request path, takes no lock,
// healthy or not: atomic loads, and one compare-and-swap to take the
// probe. Only the rare change between healthy and unhealthy, made by the
// copies' goroutines, is locked.
type health struct {
	maxFails     int64 // 0: never unhealthy
	failDuration time.Duration

	fails     atomic.Int64 // consecutive failures
	unhealthy atomic.Bool
	retryAt   atomic.Int64 // when a probe may go, in Unix nanoseconds
	probing   atomic.Bool  // a probe is in flight

	mu         sync.Mutex // serialises changes of unhealthy
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
	if now().UnixNano() < h.retryAt.Load() || !h.probing.CompareAndSwap(false, true) {
		return false, false
	}
	return true, true
}

// cancelProbe gives back a probe that allow granted but was not sent.
func (h *health) cancelProbe() {
	h.probing.Store(false)
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
		h.retryAt.Store(now().Add(h.failDuration).UnixNano())
		h.probing.Store(false)
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
	// the probe's time is set before the target turns unhealthy, so that
	// no copy sees it unhealthy with an old one
	h.retryAt.Store(now().Add(h.failDuration).UnixNano())
	h.probing.Store(false)
	h.unhealthy.Store(!healthy)
	if healthy {
		h.fails.Store(0)
	}
	if h.transition != nil {
		h.transition(healthy)
	}
}
