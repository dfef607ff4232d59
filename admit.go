package mirror

import (
	"net/http"
)

// admit applies the checks that may stop a selected request from being
// copied to t, in order of cost, and takes the copy's slots (see
// admitSending) when they pass. It reports whether the copy is an
// unhealthy target's probe.
func (h *Handler) admit(t *Target, r *http.Request) (probe bool, reason outcome, ok bool) {
	if reason, skip := unsupported(r); skip {
		return false, reason, false
	}
	if r.ContentLength > h.MaxBodySize && (!h.streams() || h.MaxStreamSize > 0 && r.ContentLength > h.MaxStreamSize) {
		return false, skippedBodyTooLarge, false
	}
	if !t.sampler.allow() {
		return false, droppedRate, false
	}
	return h.admitSending(t)
}

// admitSending applies the checks that a copy to t must pass whatever
// chose it: t's health, a slot under the handler's max_in_flight and a
// slot under t's concurrency limit, which it takes. The slots must be
// given back with release.
func (h *Handler) admitSending(t *Target) (probe bool, reason outcome, ok bool) {
	ok, probe = t.health.allow()
	if !ok {
		return false, droppedUnhealthy, false
	}
	reason = droppedInFlight
	if h.inFlight.Add(1) <= int64(h.MaxInFlight) {
		if t.limit.acquire() {
			t.inFlight.Inc()
			return probe, 0, true
		}
		reason = droppedConcurrency
	}
	h.inFlight.Add(-1)
	if probe {
		t.health.cancelProbe()
	}
	return false, reason, false
}

// release gives back the slots that admit took for a copy to t; held is
// what the limit's start returned, nil if the copy never started;
// completed says whether the shadow answered it. It reports whether the
// copy was cancelled for being late.
func (h *Handler) release(t *Target, held *heldCopy, completed bool) (late bool) {
	late = t.limit.release(held, completed)
	t.inFlight.Dec()
	h.inFlight.Add(-1)
	return late
}

// abandon ends copies that will not be sent: each is counted with reason
// and its slot is given back.
func (h *Handler) abandon(copies []pendingCopy, reason outcome) {
	for _, c := range copies {
		// the slot is free before the outcome is counted, as in send, so
		// that a counted copy is never in flight
		h.release(c.target, nil, false)
		if c.probe {
			c.target.health.cancelProbe()
		}
		c.target.count(reason)
		if c.ex != nil {
			c.response.finish()
			c.ex.release()
		}
	}
}
