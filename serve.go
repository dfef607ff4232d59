package mirror

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-mirror/mirror/compare"
)

// The request path: ServeHTTP chooses each request's copies, admits
// them, and dispatches them once they are complete (their body with them;
// with wait_for_primary, once the primary has answered too: hold.go), or
// streams them alongside the primary. Nothing here waits for a copy.

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	screenMarker(r)
	var copies []pendingCopy
	for _, t := range h.Targets {
		if !t.selects(r) {
			continue
		}
		a, reason, ok := h.admit(t, r)
		if !ok {
			t.count(reason)
			continue
		}
		copies = append(copies, newPendingCopy(t, r, a))
	}
	if len(copies) == 0 {
		return next.ServeHTTP(w, r)
	}
	routeReturned := false // rather than aborting the response with a panic
	if h.comparing {
		var ex *compare.Exchange
		if copies, ex = h.prepareComparison(r, copies); ex != nil {
			// the primary's response is captured as it is written, and
			// released to the comparisons once the route is done with it
			w = ex.CaptureWriter(w)
			// the response is incomplete if the route aborted it, or failed
			// because its client went away; a route that failed with its
			// client still there wrote no response (no_primary)
			defer func() { ex.FinishPrimary(!routeReturned || err != nil && r.Context().Err() != nil) }()
		}
	}
	noteInAccessLog(r, copies)
	// with wait_for_primary, complete copies wait for the primary's
	// response (hold.go); nil, and nothing held, by default
	wait := h.newPrimaryWait()

	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		h.dispatchAfter(wait, copies, nil)
		err = next.ServeHTTP(w, r)
		routeReturned = true
		wait.release()
		return err
	}
	// copies without a body are complete; the others wait for it
	if copies = h.dispatchBodiless(wait, copies); len(copies) == 0 {
		err = next.ServeHTTP(w, r)
		routeReturned = true
		wait.release()
		return err
	}

	// The body is copied as the primary reads it; the copies are complete
	// the moment it reaches its end or, for a body over max_body_size,
	// streamed from then on.
	tee := newTeeBody(h, r.Body, copies, r.ContentLength)
	tee.wait = wait
	r.Body = tee
	err = next.ServeHTTP(w, r)
	routeReturned = true
	wait.release()
	tee.settle(skippedBodyIncomplete) // a no-op if the body was read to the end
	return err
}

// dispatchBodiless dispatches, with no body (after the primary when wait
// is not nil), the copies whose targets copy no request body, and returns
// the others.
func (h *Handler) dispatchBodiless(wait *primaryWait, copies []pendingCopy) []pendingCopy {
	var bodiless []pendingCopy
	for _, c := range copies {
		if !c.target.copiesBody() {
			bodiless = append(bodiless, c)
		}
	}
	if len(bodiless) == 0 {
		return copies
	}
	h.dispatchAfter(wait, bodiless, nil)
	kept := copies[:0]
	for _, c := range copies {
		if c.target.copiesBody() {
			kept = append(kept, c)
		}
	}
	return kept
}

// noteInAccessLog adds to the request's access log line the targets it is
// copied to, as the field mirrored_to.
func noteInAccessLog(r *http.Request, copies []pendingCopy) {
	extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
	if !ok {
		return
	}
	names := make([]string, len(copies))
	for i, c := range copies {
		names[i] = c.target.label
	}
	extra.Add(zap.Strings("mirrored_to", names))
}

// dispatch starts one goroutine per copy. body holds the complete request
// body shared by all the copies, or is nil when there is none or the
// copies stream theirs. It never blocks: the goroutines are bounded by the
// in-flight slots that the copies already hold.
func (h *Handler) dispatch(copies []pendingCopy, body *sharedBody) {
	if h.reserve(copies, body) {
		h.start(copies, body)
	}
}

// reserve counts the copies in the handler's wait group, so that a config
// unloading waits for them, and reports whether they may go: when the
// config is being unloaded they are cancelled instead.
func (h *Handler) reserve(copies []pendingCopy, body *sharedBody) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.abandon(copies, failed)
		for _, c := range copies {
			body.release()
			if c.stream != nil {
				c.stream.Close()
			}
		}
		return false
	}
	h.wg.Add(len(copies))
	return true
}

// start starts the goroutines of copies that reserve counted.
func (h *Handler) start(copies []pendingCopy, body *sharedBody) {
	for _, c := range copies {
		go h.send(c, body)
	}
}
