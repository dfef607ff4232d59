package mirror

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// exchange is one request whose responses are compared: the primary's
// response and the responses to its copies that compare or supply noise.
// Its buffers are shared by the primary's side and every such copy,
// reference-counted, and returned to the pool exactly once, by whichever
// side lets go last.
type exchange struct {
	primary  *capturedResponse
	capture  *captureWriter // the primary's, once the route runs
	start    time.Time
	method   string
	path     string
	rawQuery string
	shadows  []*capturedResponse
	refs     atomic.Int32
}

// prepareComparison adds to copies the noise copies that the comparing
// targets among them need, and when any copy compares, returns the
// exchange that their responses are captured into. It runs on the request
// path and only allocates when a copy compares.
func (h *Handler) prepareComparison(r *http.Request, copies []pendingCopy) ([]pendingCopy, *exchange) {
	comparing := false
	for i := range copies {
		cmp := copies[i].target.Compare
		if cmp == nil {
			continue
		}
		comparing = true
		if cmp.noise == nil || hasCopyFor(copies, cmp.noise) {
			continue
		}
		// the noise target gets every request its candidate gets,
		// whatever its own selection says; only its health and a slot
		// are checked
		probe, reason, ok := h.admitSending(cmp.noise)
		if !ok {
			cmp.noise.count(reason)
			continue
		}
		copies = append(copies, newPendingCopy(cmp.noise, r, probe))
	}
	if !comparing {
		return copies, nil
	}

	ex := &exchange{
		primary:  newCapturedResponse(h.keepPrimaryBody),
		start:    now(),
		method:   r.Method,
		path:     r.URL.EscapedPath(),
		rawQuery: r.URL.RawQuery,
	}
	for i := range copies {
		if t := copies[i].target; t.captures {
			copies[i].ex = ex
			copies[i].response = newCapturedResponse(t.keepBody)
			ex.shadows = append(ex.shadows, copies[i].response)
		}
	}
	for i := range copies {
		if cmp := copies[i].target.Compare; cmp != nil && cmp.noise != nil {
			for _, other := range copies {
				if other.target == cmp.noise {
					copies[i].noise = other.response
				}
			}
		}
	}
	ex.refs.Store(int32(1 + len(ex.shadows)))
	return copies, ex
}

// hasCopyFor reports whether copies has one for t.
func hasCopyFor(copies []pendingCopy, t *Target) bool {
	for _, c := range copies {
		if c.target == t {
			return true
		}
	}
	return false
}

// captureWriter wraps w, the route's response writer, so that the
// primary's response is captured into the exchange as the route writes it.
func (ex *exchange) captureWriter(w http.ResponseWriter) http.ResponseWriter {
	ex.capture = newCaptureWriter(w, ex.primary)
	return ex.capture
}

// finishPrimary ends the primary's side of the exchange, once the route
// has returned or panicked; aborted says that it did not deliver the whole
// response (see captureWriter.settle).
func (ex *exchange) finishPrimary(aborted bool) {
	if ex.capture != nil {
		ex.capture.settle(aborted)
	}
	ex.primary.duration = now().Sub(ex.start)
	ex.primary.finish()
	ex.release()
}

// release drops one side's reference; the last one returns every buffer
// of the exchange to the pool.
func (ex *exchange) release() {
	if ex.refs.Add(-1) != 0 {
		return
	}
	ex.primary.releaseBody()
	for _, s := range ex.shadows {
		s.releaseBody()
	}
	if hook := onExchangeReleased.Load(); hook != nil {
		(*hook)(ex)
	}
}

// onExchangeReleased, when set by a test, is called when an exchange's
// buffers go back to the pool.
var onExchangeReleased atomic.Pointer[func(*exchange)]

// compareCopy compares c's response with the primary's, in c's own
// goroutine, once the responses it needs have arrived: the primary's and,
// when the target has a noise source, the noise copy's. ctx bounds the
// wait; a primary still running when it ends is counted as streaming.
func (h *Handler) compareCopy(ctx context.Context, c pendingCopy) {
	t, cmp := c.target, c.target.Compare
	select {
	case <-c.ex.primary.done:
	case <-ctx.Done():
		select {
		case <-c.ex.primary.done:
			// the primary is done too: what the shadow sent before its
			// time ran out is compared, and differs if it was cut
		default:
			if h.copyCtx.Err() == nil { // not an unload: the primary outlived the timeout
				t.skipCompare(skippedStreaming)
			}
			return
		}
	}
	primary := c.ex.primary
	switch {
	case primary.streaming:
		t.skipCompare(skippedStreaming)
		return
	case primary.incomplete:
		// not the primary's answer: nothing to compare with
		t.skipCompare(primaryIncomplete)
		return
	case !primary.got:
		t.skipCompare(noPrimary)
		return
	}
	var noise *capturedResponse
	if c.noise != nil {
		select {
		case <-c.noise.done:
			if c.noise.got {
				noise = c.noise
			}
		case <-ctx.Done():
		}
	}

	result, verdicts := t.judge(c.ex, primary, c.response, noise)
	t.compared(result, c.response.duration, primary.duration)
	if result == mismatch {
		if ce := t.sampledLogger.Check(zapcore.InfoLevel, "mirror response differs"); ce != nil {
			ce.Write(
				zap.String("target", t.label),
				zap.String("method", c.ex.method),
				zap.String("uri", c.ex.sampleURI(cmp)),
				zap.Int("primary_status", primary.status),
				zap.Int("shadow_status", c.response.status),
				zap.Any("differences", verdicts),
			)
		}
	}
}

// judge compares a shadow's response, and the noise target's when there
// is one, with the primary's, records the exchange in t's report and
// returns its result and the verdict on each difference.
func (t *Target) judge(ex *exchange, primary, shadow, noise *capturedResponse) (compareResult, []fieldVerdict) {
	cmp := t.Compare
	p, s := decode(primary, cmp.MaxBodySize), decode(shadow, cmp.MaxBodySize)
	defer p.release()
	defer s.release()
	diffs, truncated := diffResponses(cmp, &p, &s)
	var noiseDiffs []difference
	if noise != nil {
		n := decode(noise, cmp.MaxBodySize)
		noiseDiffs, _ = diffResponses(cmp, &p, &n)
		n.release()
	}
	var primaryGRPC, shadowGRPC string
	if isGRPC(p.header.Get("Content-Type")) {
		primaryGRPC, shadowGRPC = grpcStatus(&p), grpcStatus(&s)
	}
	return t.record(observation{
		method:        ex.method,
		uri:           ex.sampleURI(cmp),
		primaryStatus: primary.status,
		shadowStatus:  shadow.status,
		primaryGRPC:   primaryGRPC,
		shadowGRPC:    shadowGRPC,
		primaryTime:   primary.duration,
		shadowTime:    shadow.duration,
		diffs:         diffs,
		noiseDiffs:    noiseDiffs,
		hadNoise:      noise != nil,
		truncated:     truncated,
	})
}

// sampleURI is the request's URI as kept in samples and logs: its path,
// and its query only when cmp allows it.
func (ex *exchange) sampleURI(cmp *Compare) string {
	if cmp.SamplesIncludeQuery && ex.rawQuery != "" {
		return ex.path + "?" + ex.rawQuery
	}
	return ex.path
}
