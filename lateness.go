package mirror

import (
	"context"
	"time"
)

// Lateness: how the concurrency limit tells a hung shadow from a long,
// healthy exchange. A copy is late when it has shown no sign of life
// (a dial, a write, a response byte) for lateAfter while waiting for its
// answer; a shadow has stopped answering when a copy is late and nothing
// was answered meanwhile (see maybeUpdate).

// lateAfter is how long a copy waiting for its answer may show no sign of
// life before it is late.
func (l *concurrencyLimit) lateAfter() time.Duration {
	return max(time.Duration(l.baseline*lateFactor), minLate)
}

// anyLate reports whether a copy waiting for its answer has shown no sign
// of life since silentSince.
func (l *concurrencyLimit) anyLate(silentSince time.Time) bool {
	for e := l.sending.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*heldCopy); !c.answered && c.lastSign.Load() < silentSince.UnixNano() {
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
		if c.answered || c.cancelled || c.ctx.Err() != nil || pastDeadline(c.ctx) {
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
