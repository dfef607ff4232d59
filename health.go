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
//
// A breaker belongs to a shadow, not to a config (see shadowState): a
// config load reconfigures it and keeps its state.
type health struct {
	clock        func() time.Time
	maxFails     atomic.Int64 // 0: never unhealthy
	failDuration atomic.Int64 // in nanoseconds

	fails     atomic.Int64 // consecutive failures
	unhealthy atomic.Bool
	retryAt   atomic.Int64 // when a probe may go, in Unix nanoseconds
	probing   atomic.Bool  // a probe is in flight

	mu         sync.Mutex // serialises changes of unhealthy, and of transition
	transition func(healthy bool)
}

func newHealth(clock func() time.Time, maxFails int, failDuration time.Duration, transition func(healthy bool)) *health {
	h := &health{clock: clock}
	h.configure(maxFails, failDuration, transition)
	return h
}

// configure sets the breaker's thresholds and what it calls when it opens
// or closes, keeping its state.
func (h *health) configure(maxFails int, failDuration time.Duration, transition func(healthy bool)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maxFails.Store(int64(max(maxFails, 0)))
	h.failDuration.Store(int64(failDuration))
	h.transition = transition
}

// closed reports whether the breaker lets copies through, without taking
// a probe.
func (h *health) closed() bool {
	return !h.unhealthy.Load()
}

// allow reports whether a copy may be sent now, and whether it is the
// probe of an unhealthy target. A probe that is then not sent must be
// given back with cancelProbe.
func (h *health) allow() (ok, probe bool) {
	if !h.unhealthy.Load() {
		return true, false
	}
	if h.clock().UnixNano() < h.retryAt.Load() || !h.probing.CompareAndSwap(false, true) {
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
	maxFails := h.maxFails.Load()
	if maxFails == 0 {
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
		h.retryAt.Store(h.clock().Add(time.Duration(h.failDuration.Load())).UnixNano())
		h.probing.Store(false)
	case n >= maxFails && !h.unhealthy.Load():
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
	h.retryAt.Store(h.clock().Add(time.Duration(h.failDuration.Load())).UnixNano())
	h.probing.Store(false)
	h.unhealthy.Store(!healthy)
	if healthy {
		h.fails.Store(0)
	}
	if h.transition != nil {
		h.transition(healthy)
	}
}
