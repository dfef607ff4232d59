package mirror

import (
	"container/list"
	"context"
	"math"
	"sync"
	"time"
)

// concurrencyLimit is one target's limit on its copies in flight, which
// adapts to what the shadow shows it can serve. It is a gradient
// controller in the manner of Envoy's adaptive-concurrency filter and
// Netflix's Gradient2, with one addition that neither has: copies still in
// flight count as evidence. A shadow that hangs completes nothing, so a
// controller that learns only from completions learns nothing until the
// timeout; this one notices the copies that are outstanding far longer
// than the shadow's usual latency.
//
// Every updateInterval, on the first copy admitted or finished after it:
//
//   - Stalled: if the oldest copy has been outstanding longer than lateAfter
//     and no copy has completed for lateAfter, the shadow has stopped
//     answering, until a copy completes again. While it has, the limit
//     halves every interval, and the copies older than lateAfter, and the
//     oldest of those over the limit, are cancelled (outcome
//     cancelled_late), which frees their connections and makes room for
//     newer copies to find out whether the shadow recovered.
//   - Otherwise, from the copies that completed during the interval:
//     gradient = (rttTolerance × baseline + rttSlack) / mean RTT, clamped
//     to [0.5, 1].
//     Below 1 (latency climbed) the limit shrinks by smoothing × (1 −
//     gradient), at most a tenth per interval; at 1 it grows by √limit
//     (Envoy's headroom), but past initialLimit only if at least half of it
//     was in use (Netflix's guard against growing a limit nothing needs).
//     So a shadow that recovers gets its first initialLimit slots back
//     within about half a second, used or not.
//
// The limit stays between floor and ceiling. The baseline is an
// exponentially weighted mean of the intervals' mean round trips, so a
// shadow that becomes durably slower is accepted as it is after a second or
// two, as Gradient2's long-term average does.
//
// In fixed mode the limit is the ceiling and never changes.
type concurrencyLimit struct {
	floor, ceiling int
	fixed          bool
	clock          func() time.Time
	onChange       func(limit int) // called with the lock held

	mu             sync.Mutex
	limit          float64
	inFlight       int       // copies admitted and not yet released
	peak           int       // the most in flight during this interval
	sending        list.List // of *heldCopy that started, oldest first
	baseline       float64   // mean round trip of completed copies, in ns; 0 before the first
	completed      int       // copies completed during this interval
	rttSum         float64   // their round trips, in ns
	lastCompletion time.Time // when a copy last completed
	nextUpdate     time.Time
	stalled        bool // no copy has completed since the shadow stopped answering
}

// The controller's constants.
const (
	// initialLimit is where the limit starts (Netflix's default too): few
	// enough that a shadow hanging from the start holds only these copies.
	initialLimit = 20

	// updateInterval is how often the limit is recalculated (Envoy's
	// default concurrency_update_interval).
	updateInterval = 100 * time.Millisecond

	// rttTolerance is how much slower than the baseline the copies of an
	// interval may be before the limit shrinks. Gradient2 uses 1.5; a
	// shadow's latency is noisier than a service's own, and the mirror
	// needs only to stop feeding a shadow that queues.
	rttTolerance = 2.0

	// rttSlack is added to the tolerated round trip, so that a fast
	// shadow's jitter of a few milliseconds, which holds next to no
	// copies, is not taken for a climb that shrinks its limit.
	rttSlack = 5 * time.Millisecond

	// smoothing is how much of a shrink the gradient asks for is applied
	// per interval (Gradient2's default), so one noisy interval costs at
	// most a tenth of the limit.
	smoothing = 0.2

	// baselineWeight is the weight of each interval's mean round trip in
	// the baseline: the baseline follows a lasting change of latency with
	// a time constant of about 20 intervals, 2 s. It is weighted by
	// interval, not by copy, so that it moves as slowly at a high rate as
	// at a low one and a latency climb is noticed at any rate.
	baselineWeight = 1.0 / 20

	// lateFactor and minLate set lateAfter, the age past which a copy in
	// flight is late: lateFactor times the baseline, and never less than
	// minLate so that a fast shadow's ordinary hiccups are not taken for
	// a hang. A late copy is a hang only if nothing completed meanwhile.
	lateFactor = 4
	minLate    = time.Second

	// defaultFloor is the default least limit.
	defaultFloor = 4
)

func newConcurrencyLimit(floor, ceiling int, fixed bool, clock func() time.Time, onChange func(int)) *concurrencyLimit {
	l := &concurrencyLimit{floor: floor, ceiling: ceiling, fixed: fixed, clock: clock, onChange: onChange}
	l.limit = float64(ceiling)
	if !fixed {
		l.limit = float64(min(max(initialLimit, floor), ceiling))
	}
	l.nextUpdate = clock().Add(updateInterval)
	if onChange != nil {
		onChange(int(l.limit))
	}
	return l
}

// heldCopy is a copy that holds one of the target's slots and has
// started its exchange.
type heldCopy struct {
	elem      *list.Element // in sending
	started   time.Time
	ctx       context.Context // the exchange's
	cancel    context.CancelFunc
	cancelled bool // cancelled for being late
}

// acquire takes a slot for a new copy, and reports false when the
// target's limit is reached. It never waits, and allocates nothing: it
// runs on the request path.
func (l *concurrencyLimit) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeUpdate()
	if l.inFlight >= int(l.limit) {
		return false
	}
	l.inFlight++
	l.peak = max(l.peak, l.inFlight)
	return true
}

// start records that the exchange of a copy holding a slot begins now, on
// ctx; cancel cancels ctx. Only from here can the copy be late. It runs in
// the copy's goroutine.
func (l *concurrencyLimit) start(ctx context.Context, cancel context.CancelFunc) *heldCopy {
	c := &heldCopy{ctx: ctx, cancel: cancel}
	l.mu.Lock()
	defer l.mu.Unlock()
	c.started = l.clock()
	c.elem = l.sending.PushBack(c)
	return c
}

// release gives back a copy's slot; c is what start returned, or nil for
// a copy that never started. completed says whether the shadow answered;
// only then is the round trip a sample. It reports whether c was cancelled
// for being late.
func (l *concurrencyLimit) release(c *heldCopy, completed bool) (late bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if c == nil {
		return false // never started: no sample
	}
	l.sending.Remove(c.elem)
	c.elem, c.ctx, c.cancel = nil, nil, nil
	if !completed || c.cancelled {
		l.maybeUpdate()
		return c.cancelled
	}
	t := l.clock()
	rtt := float64(t.Sub(c.started))
	l.completed++
	l.rttSum += rtt
	l.lastCompletion = t
	l.stalled = false
	l.maybeUpdate()
	return false
}

// current returns the limit now.
func (l *concurrencyLimit) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// lateAfter is the age past which a copy in flight is late.
func (l *concurrencyLimit) lateAfter() time.Duration {
	return max(time.Duration(l.baseline*lateFactor), minLate)
}

// maybeUpdate recalculates the limit once updateInterval has passed.
func (l *concurrencyLimit) maybeUpdate() {
	if l.fixed {
		return
	}
	t := l.clock()
	if t.Before(l.nextUpdate) {
		return
	}
	l.nextUpdate = t.Add(updateInterval)
	old := int(l.limit)

	late := t.Add(-l.lateAfter())
	oldest := l.sending.Front()
	if oldest != nil && oldest.Value.(*heldCopy).started.Before(late) && l.lastCompletion.Before(late) {
		l.stalled = true
	}
	switch {
	case l.stalled:
		l.limit = max(float64(l.floor), l.limit/2)
		l.cancelLate(late)
	case l.completed > 0:
		mean := l.rttSum / float64(l.completed)
		if l.baseline == 0 {
			l.baseline = mean
		}
		gradient := max(0.5, min(1, (rttTolerance*l.baseline+float64(rttSlack))/mean))
		l.baseline += (mean - l.baseline) * baselineWeight
		if gradient < 1 {
			l.limit *= 1 - smoothing*(1-gradient)
		} else if l.peak*2 >= int(l.limit) || l.limit < initialLimit {
			l.limit += math.Sqrt(l.limit)
		}
	}
	l.limit = max(float64(l.floor), min(float64(l.ceiling), l.limit))
	l.completed, l.rttSum, l.peak = 0, 0, l.inFlight
	if n := int(l.limit); n != old && l.onChange != nil {
		l.onChange(n)
	}
}

// cancelLate cancels, while the shadow has stopped answering, the copies
// that started before late and the oldest of those over the limit.
func (l *concurrencyLimit) cancelLate(late time.Time) {
	over := l.inFlight - int(l.limit)
	for e := l.sending.Front(); e != nil; e = e.Next() {
		c := e.Value.(*heldCopy)
		if c.cancelled || c.ctx.Err() != nil {
			over-- // already on its way out: late, timed out or unloaded
			continue
		}
		if over <= 0 && !c.started.Before(late) {
			break
		}
		c.cancelled = true
		c.cancel()
		over--
	}
}
