package mirror

import (
	"net/http"
)

// admission is a copy that its target admitted: the replica it goes to,
// and whether it is the probe of an ejected replica.
type admission struct {
	replica *replica
	probe   bool
}

// admit applies the checks that may stop a selected request from being
// copied to t, in order of cost, and takes the copy's slots (see
// admitSending) when they pass.
func (h *Handler) admit(t *Target, r *http.Request) (a admission, reason outcome, ok bool) {
	if reason, skip := unsupported(r); skip {
		return a, reason, false
	}
	if t.pathPrefix != "" && !safeUnderPrefix(r.URL.EscapedPath()) {
		return a, skippedUnsafePath, false
	}
	if r.ContentLength > h.MaxBodySize && t.copiesBody() && (!h.streams() || h.MaxStreamSize > 0 && r.ContentLength > h.MaxStreamSize) {
		return a, skippedBodyTooLarge, false
	}
	if !t.sampler.allow() {
		return a, droppedRate, false
	}
	return h.admitSending(t, r)
}

// admitSending applies the checks that a copy to t must pass whatever
// chose it: t's health, a slot under the handler's max_in_flight, which
// bounds memory, and a place within t's concurrency ceiling (t's share of
// max_in_flight), which it takes. They must be given back with
// releaseInFlight. The slot under t's adaptive limit is taken later, in
// the copy's own goroutine, once its body is ready (see send): a copy
// whose client is still sending its body holds no slot of the shadow's.
//
// It chooses the copy's replica (see pool.pick): the target is
// unavailable only when every replica is ejected.
func (h *Handler) admitSending(t *Target, r *http.Request) (a admission, reason outcome, ok bool) {
	a.replica, a.probe, ok = t.pool.pick(r)
	if !ok {
		return a, droppedUnhealthy, false
	}
	reason = droppedInFlight
	if h.inFlight.Add(1) <= int64(h.MaxInFlight) {
		if t.reserve() {
			t.inFlight.Inc()
			return a, 0, true
		}
		reason = droppedConcurrency
	}
	h.inFlight.Add(-1)
	if a.probe {
		a.replica.state.health.cancelProbe()
	}
	return admission{}, reason, false
}

// reserve counts a copy admitted for t, and reports false when t already
// has its ceiling's worth, waiting or in flight. It takes no lock and
// allocates nothing.
func (t *Target) reserve() bool {
	if t.reserved.Add(1) > t.ceiling {
		t.reserved.Add(-1)
		return false
	}
	return true
}

// releaseInFlight gives back what admitSending took for a copy to t.
func (h *Handler) releaseInFlight(t *Target) {
	t.reserved.Add(-1)
	t.inFlight.Dec()
	h.inFlight.Add(-1)
}

// abandon ends copies that will not be sent: each is counted with reason
// and its slot is given back.
func (h *Handler) abandon(copies []pendingCopy, reason outcome) {
	for _, c := range copies {
		// the slot is free before the outcome is counted, as in send, so
		// that a counted copy is never in flight
		h.releaseInFlight(c.target)
		if c.probe {
			c.replica.state.health.cancelProbe()
		}
		c.target.count(reason)
		if c.ex != nil {
			c.response.Finish()
			c.ex.Release()
		}
	}
}

// unsupported reports whether r can never be copied, and why: it is
// itself a copy (which would make a mirror loop; screenMarker has removed
// any marker that is not this process's), or it opens a tunnel or
// upgrades the connection, which a one-shot copy cannot reproduce.
func unsupported(r *http.Request) (outcome, bool) {
	if _, ok := r.Header[markerHeader]; ok {
		return skippedLoop, true
	}
	if r.Method == http.MethodConnect || r.Header.Get("Upgrade") != "" {
		return skippedUnsupported, true
	}
	return 0, false
}
