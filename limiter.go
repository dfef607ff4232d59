package mirror

import (
	"container/list"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// concurrencyLimit is one shadow's limit on its copies in flight, which
// adapts to what the shadow shows it can serve. It is a gradient
// controller in the manner of Envoy's adaptive-concurrency filter and
// Netflix's Gradient2, with two additions that neither has:
//
//   - A copy over the limit waits for a slot, off the request path, for at
//     most maxWait, and only then is dropped: a burst is absorbed while the
//     limit grows to it, instead of being dropped before the limit has
//     learnt anything. A waiting copy holds its buffered body, which the
//     handler's max_in_flight bounds, and no connection.
//   - Copies in flight count as evidence. A copy is late when it has shown
//     no sign of life for lateAfter while waiting for its answer: no dial,
//     handshake or body byte taken, no response. A shadow that hangs
//     answers nothing, so a controller that learns only from answers
//     learns nothing until the timeout; this one notices the copies that
//     have been silent far longer than the shadow's usual latency. A copy
//     that has been answered (response headers came) is never late: a
//     long gRPC stream or a slow download is alive, and ends at its
//     timeout at the latest.
//
// The latency it learns from is each copy's time to first response byte,
// counted from the moment its request was written whole: the shadow's own
// time, not the client's upload nor the length of the response.
//
// Every updateInterval, on the first copy taken, answered or finished
// after it, and, while copies hold a slot, on a timer (see watchLocked):
//
//   - Stalled: if a copy is late and no copy has been answered for
//     lateAfter, the shadow has stopped answering, until a copy is
//     answered again. While it has, the limit halves every interval, and
//     the late copies, and the oldest unanswered ones over the limit, are
//     cancelled (outcome cancelled_late), which frees their connections and
//     makes room for newer copies to find out whether the shadow recovered.
//   - Otherwise, from the copies answered during the interval:
//     gradient = (rttTolerance × baseline + rttSlack) / mean latency,
//     clamped to [0.5, 1]. Below 1 (latency climbed) the limit shrinks by
//     smoothing × (1 − gradient), at most a tenth per interval. At 1,
//     when copies waited for a slot during the interval (the limit, not
//     the shadow, held them back), it doubles, or grows to the copies in
//     flight and waiting if they are more; otherwise it grows by √limit
//     (Envoy's headroom), but past initialLimit only if at least half of
//     it was in use (Netflix's guard against growing a limit nothing
//     needs).
//
// The limit stays between floor and ceiling. The baseline is an
// exponentially weighted mean of the intervals' mean latencies, so a
// shadow that becomes durably slower is accepted as it is after a second
// or two, as Gradient2's long-term average does.
//
// In fixed mode the limit is the ceiling and never changes, and no copy is
// cancelled for being late; copies over it still wait up to maxWait.
//
// A limit belongs to a shadow, not to a config: it is kept in shadowStates
// across config loads, so that a reload does not forget what it learnt.
type concurrencyLimit struct {
	clock func() time.Time

	// inFlight and limit as last published, for the pool's choice of a
	// replica on the request path, without the lock
	inFlightSeen atomic.Int64
	limitSeen    atomic.Int64

	mu       sync.Mutex
	floor    int
	ceiling  int
	fixed    bool
	maxWait  time.Duration
	onChange func(limit int)    // called with the lock held
	onStall  func(stalled bool) // called with the lock held
	limit    float64            // 0 until configured
	inFlight int                // copies holding a slot
	peak     int                // the most in flight during this interval
	demand   bool               // a copy waited or was refused during this interval
	waiting  list.List          // of *slotWaiter, oldest first
	sending  list.List          // of *heldCopy that started, oldest first
	baseline float64            // mean latency of answered copies, in ns; 0 before the first
	answered int                // copies answered during this interval
	rttSum   float64            // their latencies, in ns
	lastSeen time.Time          // when a copy was last answered
	next     time.Time          // the next update
	stalled  bool               // no copy has been answered since the shadow stopped answering

	// afterFunc is time.AfterFunc for a shadow's limit, and nil for one
	// that a test drives on a fake clock; watching is true while its
	// timer is set (see watchLocked)
	afterFunc func(time.Duration, func()) *time.Timer
	watching  bool
}

// The controller's constants.
const (
	// initialLimit is where a new shadow's limit starts (Netflix's
	// default too): few enough that a shadow hanging from the start holds
	// only these copies. A burst is absorbed by waiting and doubling.
	initialLimit = 20

	// updateInterval is how often the limit is recalculated (Envoy's
	// default concurrency_update_interval).
	updateInterval = 100 * time.Millisecond

	// rttTolerance is how much slower than the baseline the copies of an
	// interval may be before the limit shrinks. Gradient2 uses 1.5; a
	// shadow's latency is noisier than a service's own, and the mirror
	// needs only to stop feeding a shadow that queues.
	rttTolerance = 2.0

	// rttSlack is added to the tolerated latency, so that a fast shadow's
	// jitter of a few milliseconds, which holds next to no copies, is not
	// taken for a climb that shrinks its limit.
	rttSlack = 5 * time.Millisecond

	// smoothing is how much of a shrink the gradient asks for is applied
	// per interval (Gradient2's default), so one noisy interval costs at
	// most a tenth of the limit.
	smoothing = 0.2

	// baselineWeight is the weight of each interval's mean latency in the
	// baseline: the baseline follows a lasting change of latency with a
	// time constant of about 20 intervals, 2 s. It is weighted by
	// interval, not by copy, so that it moves as slowly at a high rate as
	// at a low one and a latency climb is noticed at any rate.
	baselineWeight = 1.0 / 20

	// lateFactor and minLate set lateAfter, how long a copy waiting for
	// its answer may show no sign of life before it is late: lateFactor
	// times the baseline, and never less than minLate so that a fast
	// shadow's ordinary hiccups are not taken for a hang. A late copy is
	// a hang only if nothing was answered meanwhile.
	lateFactor = 4
	minLate    = time.Second

	// defaultFloor is the default least limit.
	defaultFloor = 4

	// defaultMaxWait is how long a copy over the limit waits for a slot
	// by default.
	defaultMaxWait = time.Second
)

// newConcurrencyLimit returns a limit that reads the time from clock; it
// admits nothing until configure has been called.
func newConcurrencyLimit(clock func() time.Time) *concurrencyLimit {
	return &concurrencyLimit{clock: clock}
}

// configure sets the limit's bounds and callbacks, as a config that uses
// it is loaded. A new limit starts at initialLimit (the ceiling when
// fixed); one that carries over from a previous config keeps what it
// learnt, within the new bounds.
func (l *concurrencyLimit) configure(floor, ceiling int, fixed bool, maxWait time.Duration, onChange func(int), onStall func(bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor, l.ceiling, l.fixed, l.maxWait = floor, ceiling, fixed, maxWait
	l.onChange, l.onStall = onChange, onStall
	switch {
	case fixed:
		l.limit = float64(ceiling)
	case l.limit == 0:
		l.limit = float64(min(max(initialLimit, floor), ceiling))
	default:
		l.limit = max(float64(floor), min(float64(ceiling), l.limit))
	}
	if l.next.IsZero() {
		l.next = l.clock().Add(updateInterval)
	}
	if l.onChange != nil {
		l.onChange(int(l.limit))
	}
	l.grantLocked()
	l.publishLocked()
}

// slotWaiter is a copy waiting for a slot.
type slotWaiter struct {
	ready   chan struct{} // closed when granted
	granted bool
	elem    *list.Element // in waiting
	maxWait time.Duration // how long it may wait, as configured when it began
}

// heldCopy is a copy that holds one of the limit's slots and has started
// its round trip.
type heldCopy struct {
	l         *concurrencyLimit
	elem      *list.Element // in sending
	started   time.Time
	wrote     time.Time    // its request was written whole; zero until then
	lastSign  atomic.Int64 // its last sign of life, in Unix nanoseconds
	answered  bool         // response headers came
	streaming bool         // its body is still being streamed: its stream_window, not lateness, cuts it off
	ctx       context.Context
	cancel    context.CancelFunc
	cancelled bool // cancelled for being late
}

// acquire takes a slot for a copy, waiting up to maxWait for one while the
// limit is reached, or until done is closed (the config is unloaded). It
// reports whether it got one. It runs in the copy's goroutine.
func (l *concurrencyLimit) acquire(done <-chan struct{}) bool {
	w, ok := l.take()
	if ok || w == nil {
		return ok
	}
	timer := time.NewTimer(w.maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return true
	case <-timer.C:
	case <-done:
	}
	return l.giveUp(w)
}

// take takes a slot if one is free, and otherwise queues a waiter for one,
// or returns none when copies may not wait.
func (l *concurrencyLimit) take() (*slotWaiter, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeUpdate()
	if l.waiting.Len() == 0 && l.inFlight < int(l.limit) {
		l.inFlight++
		l.peak = max(l.peak, l.inFlight)
		l.publishLocked()
		return nil, true
	}
	l.demand = true
	if l.maxWait <= 0 {
		return nil, false
	}
	w := &slotWaiter{ready: make(chan struct{}), maxWait: l.maxWait}
	w.elem = l.waiting.PushBack(w)
	return w, false
}

// giveUp ends w's wait, and reports whether it was granted a slot in the
// meantime after all.
func (l *concurrencyLimit) giveUp(w *slotWaiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted {
		return true
	}
	l.waiting.Remove(w.elem)
	return false
}

// grantLocked gives the free slots to the copies waiting longest.
func (l *concurrencyLimit) grantLocked() {
	for l.inFlight < int(l.limit) && l.waiting.Len() > 0 {
		w := l.waiting.Remove(l.waiting.Front()).(*slotWaiter)
		w.granted = true
		close(w.ready)
		l.inFlight++
		l.peak = max(l.peak, l.inFlight)
	}
}

// start records that the round trip of a copy holding a slot begins now, on
// ctx; cancel cancels ctx; streaming says that its body is streamed. It
// runs in the copy's goroutine.
func (l *concurrencyLimit) start(ctx context.Context, cancel context.CancelFunc, streaming bool) *heldCopy {
	c := &heldCopy{l: l, ctx: ctx, cancel: cancel, streaming: streaming}
	l.mu.Lock()
	defer l.mu.Unlock()
	c.started = l.clock()
	c.lastSign.Store(c.started.UnixNano())
	c.elem = l.sending.PushBack(c)
	l.watchLocked()
	return c
}

// alive records a sign of life of c's shadow: a connection, a handshake,
// bytes of the request body taken. It takes no lock: a streamed body calls
// it on every read.
func (c *heldCopy) alive() {
	c.lastSign.Store(c.l.clock().UnixNano())
}

// wroteRequest records that c's request has been written whole: its
// latency counts from now.
func (c *heldCopy) wroteRequest() {
	c.l.mu.Lock()
	c.wrote = c.l.clock()
	c.streaming = false
	c.lastSign.Store(c.wrote.UnixNano())
	c.l.mu.Unlock()
}

// answer records that c's response headers came: a latency sample, and
// proof that the shadow answers.
func (c *heldCopy) answer() {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.answered {
		return
	}
	c.answered = true
	t := l.clock()
	from := c.wrote
	if from.IsZero() {
		from = c.started
	}
	l.answered++
	l.rttSum += float64(t.Sub(from))
	l.lastSeen = t
	if l.stalled {
		l.stalled = false
		if l.onStall != nil {
			l.onStall(false)
		}
	}
	l.maybeUpdate()
}

// release gives back a copy's slot; c is what start returned, or nil for
// a copy that never started. It reports whether c was cancelled for being
// late.
func (l *concurrencyLimit) release(c *heldCopy) (late bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if c != nil {
		l.sending.Remove(c.elem)
		c.elem, c.ctx, c.cancel = nil, nil, nil
		late = c.cancelled
	}
	l.maybeUpdate()
	l.grantLocked()
	l.publishLocked()
	return late
}

// full reports, without the lock, whether the limit was reached when it
// last changed: a replica whose limit is full is passed over.
func (l *concurrencyLimit) full() bool {
	return l.inFlightSeen.Load() >= l.limitSeen.Load()
}

// inFlightNow returns the copies in flight when they last changed.
func (l *concurrencyLimit) inFlightNow() int64 {
	return l.inFlightSeen.Load()
}

// publishLocked makes inFlight and limit visible to full.
func (l *concurrencyLimit) publishLocked() {
	l.inFlightSeen.Store(int64(l.inFlight))
	l.limitSeen.Store(int64(l.limit))
}

// current returns the limit now.
func (l *concurrencyLimit) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// maybeUpdate recalculates the limit once updateInterval has passed.
func (l *concurrencyLimit) maybeUpdate() {
	if l.fixed || l.limit == 0 {
		return
	}
	t := l.clock()
	if t.Before(l.next) {
		return
	}
	l.next = t.Add(updateInterval)
	old := int(l.limit)

	silentSince := t.Add(-l.lateAfter())
	if !l.stalled && l.lastSeen.Before(silentSince) && l.anyLate(silentSince) {
		l.stalled = true
		if l.onStall != nil {
			l.onStall(true)
		}
	}
	switch {
	case l.stalled:
		l.limit = max(float64(l.floor), l.limit/2)
		l.cancelLate(silentSince)
	case l.answered > 0:
		mean := l.rttSum / float64(l.answered)
		if l.baseline == 0 {
			l.baseline = mean
		}
		gradient := max(0.5, min(1, (rttTolerance*l.baseline+float64(rttSlack))/mean))
		l.baseline += (mean - l.baseline) * baselineWeight
		switch {
		case gradient < 1:
			l.limit *= 1 - smoothing*(1-gradient)
		case l.demand:
			// enough for every copy that asks, at least double: a
			// queue built while the first answers were on their way
			// goes now, not one doubling per round trip later, when it
			// has grown to a second's worth (issue 23)
			l.limit = max(l.limit*2, float64(l.inFlight+l.waiting.Len()))
		case l.peak*2 >= int(l.limit) || l.limit < initialLimit:
			l.limit += math.Sqrt(l.limit)
		}
	}
	l.limit = max(float64(l.floor), min(float64(l.ceiling), l.limit))
	l.answered, l.rttSum, l.peak, l.demand = 0, 0, l.inFlight, false
	if n := int(l.limit); n != old && l.onChange != nil {
		l.onChange(n)
	}
	l.grantLocked()
	l.publishLocked()
}
