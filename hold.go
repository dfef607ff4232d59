package mirror

import (
	"sync"
	"time"
)

// With wait_for_primary set, a copy whose request is complete waits for
// the primary: it is sent once the rest of the route has returned (the
// primary's response written), or after wait_for_primary, whichever comes
// first. Its round trip, its connection's reader and its goroutine then
// run after the primary's response, not beside it on the same cores, as
// Traefik's mirroring sends each copy after the response. A streamed copy
// goes alongside the primary's request, as it must. It is off by default:
// the bench measured no change in the primary's tail from it, and 6–10%
// less saturated throughput (issue 23; README, "The primary's tail").

// primaryWait holds one request's copies until its route returns or the
// wait runs out. Held copies are already counted in the handler's wait
// group, so that a config unloading meanwhile waits for them, and sends
// them, as it does the copies in flight.
type primaryWait struct {
	h     *Handler
	mu    sync.Mutex
	over  bool // the route returned, or the wait ran out: copies go at once
	held  []heldCopies
	timer *time.Timer // started with the first copies held
}

// heldCopies are copies held with their shared body (nil for none).
type heldCopies struct {
	copies []pendingCopy
	body   *sharedBody
}

// newPrimaryWait returns the wait for one request's copies, or nil when
// copies are sent at once (wait_for_primary off, the default).
func (h *Handler) newPrimaryWait() *primaryWait {
	if h.WaitForPrimary <= 0 {
		return nil
	}
	return &primaryWait{h: h}
}

// dispatchAfter dispatches copies once the primary of pw has answered,
// or at once when pw is nil or its wait is over.
func (h *Handler) dispatchAfter(pw *primaryWait, copies []pendingCopy, body *sharedBody) {
	if pw == nil {
		h.dispatch(copies, body)
		return
	}
	if !h.reserve(copies, body) {
		return
	}
	pw.mu.Lock()
	if pw.over {
		pw.mu.Unlock()
		h.start(copies, body)
		return
	}
	pw.held = append(pw.held, heldCopies{copies: copies, body: body})
	if pw.timer == nil {
		pw.timer = time.AfterFunc(time.Duration(h.WaitForPrimary), pw.release)
	}
	pw.mu.Unlock()
}

// release ends the wait, when the route returns or the wait runs out, and
// sends the copies held. It is safe on a nil wait.
func (pw *primaryWait) release() {
	if pw == nil {
		return
	}
	pw.mu.Lock()
	pw.over = true
	held := pw.held
	pw.held = nil
	if pw.timer != nil {
		pw.timer.Stop()
	}
	pw.mu.Unlock()
	for _, hc := range held {
		pw.h.start(hc.copies, hc.body)
	}
}
