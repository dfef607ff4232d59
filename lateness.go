package mirror

import (
	"context"
	"time"
)

// Lateness: how the concurrency limit tells a hung shadow from a long,
// healthy exchange. A copy is late when it has shown no sign of life
// (a dial, a write, a response byte) for lateAfter while waiting for its
// answer; a shadow has stopped answering when a copy is late and nothing
// was answered meanwhile (see maybeUpdate). A copy whose body is still
// being streamed is never late: its stream_window cuts off a shadow that
// stops taking it (cut_off_slow). The limit checks for late copies on
// every copy taken, answered or given back, and on a timer while copies
// hold a slot (watchLocked).

// lateAfter is how long a copy waiting for its answer may show no sign of
// life before it is late.
func (l *concurrencyLimit) lateAfter() time.Duration {
	return max(time.Duration(l.baseline*lateFactor), minLate)
}

// anyLate reports whether a copy waiting for its answer has shown no sign
// of life since silentSince.
func (l *concurrencyLimit) anyLate(silentSince time.Time) bool {
	for e := l.sending.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*heldCopy); !c.answered && !c.streaming && c.lastSign.Load() < silentSince.UnixNano() {
			return true
		}
	}
	return false
}

// cancelLate cancels, while the shadow has stopped answering, the late
// copies and the oldest unanswered ones over the limit.
func (l *concurrencyLimit) cancelLate(silentSince time.Time) {
	over := l.inFlight - int(l.limit)
	for e := l.sending.Front(); e != nil; e = e.Next() {
		c := e.Value.(*heldCopy)
		if c.answered || c.streaming || c.cancelled || c.ctx.Err() != nil || pastDeadline(c.ctx) {
			over-- // alive, or already on its way out: late, timed out or unloaded
			continue
		}
		if over <= 0 && c.lastSign.Load() >= silentSince.UnixNano() {
			continue
		}
		c.cancelled = true
		c.cancel()
		over--
	}
}

// pastDeadline reports whether ctx's deadline has passed, though on a
// busy machine its timer may not have cancelled it yet: such a copy has
// timed out (failed), and is not to be cancelled as late.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// watchLocked sets a timer that recalculates the limit every
// updateInterval while copies hold a slot, even when no copy is taken,
// answered or given back: once the circuit breaker is open no copy
// reaches the limit, and the copies a hung shadow holds would otherwise
// stay until their timeout instead of being cancelled as late. It is
// called with the lock held.
func (l *concurrencyLimit) watchLocked() {
	if l.afterFunc == nil || l.watching {
		return
	}
	l.watching = true
	l.afterFunc(updateInterval, l.watchTick)
}

// watchTick is the timer's work: an update if one is due, and the timer
// again while copies still hold a slot.
func (l *concurrencyLimit) watchTick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watching = false
	l.maybeUpdate()
	if l.sending.Len() > 0 {
		l.watchLocked()
	}
}
