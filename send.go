package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/caddy-mirror/mirror/compare"
)

// send performs one copy and records its outcome, in the copy's own
// goroutine, on a context that outlives the client's request; it never
// touches the original request. Its steps, in order:
//
//  1. wait for a slot under the target's concurrency limit (at most
//     max_wait), or drop the copy;
//  2. make the round trip to the shadow (roundTrip), which ends with a streamed
//     body's stop, so that a cut-off copy is known as such before anything
//     looks at its response;
//  3. give the slot back and record the shadow's health: from here on
//     nothing the copy waits for (the primary, the noise copy) is held
//     against the shadow;
//  4. compare the response, when the target compares;
//  5. give back the max_in_flight slot, then count the outcome, so that a
//     counted copy is never in flight.
func (h *Handler) send(c pendingCopy, body *sharedBody) {
	defer h.wg.Done()
	t := c.target
	// a copy whose dial fails may go to another replica once: nothing of
	// it reached the shadow; a buffered body is kept for that
	retry := c.stream == nil && len(t.pool.now()) > 1
	if retry {
		body.retain()
	}
	ctx, cancel, r, ok := h.sendTo(c, body)
	defer cancel()
	if ok && r.dialFailed && retry {
		if other := t.pool.other(c.replica); other != nil {
			h.recordHealth(c, roundTripResult{outcome: failed}) // the replica's breaker sees the failed dial
			c.replica, c.probe = other, false
			c.req = redirect(c.req, other)
			cancel()
			ctx, cancel, r, ok = h.sendTo(c, body)
			defer cancel()
			retry = false // the body's spare reference went to this attempt
		}
	}
	if retry {
		body.release() // the spare reference, unused
	}
	if !ok {
		h.dropUnsent(c)
		return
	}
	h.recordHealth(c, r)
	h.logOutcome(c, r)

	if c.ex != nil {
		c.response.Finish()
		if cmp := t.comparison.comparer; cmp != nil && r.outcome == mirrored {
			cmp.Compare(ctx, c.ex, c.response, c.noise, h.unloading)
		}
		c.ex.Release()
	}
	h.releaseInFlight(t)
	t.count(r.outcome)
}

// sendTo waits for a slot under the limit of c's replica, makes the round
// trip there and gives the slot back; ok is false when no slot came, and
// then c's body reference has been given back. The context it returns is
// the round trip's, kept for the comparison; cancel must be called.
func (h *Handler) sendTo(c pendingCopy, body *sharedBody) (ctx context.Context, cancel context.CancelFunc, r roundTripResult, ok bool) {
	t, limit := c.target, c.replica.state.limit
	t.waitingGauge.Inc()
	gotSlot := limit.acquire(h.copyCtx.Done())
	t.waitingGauge.Dec()
	if !gotSlot {
		if c.stream != nil {
			_ = c.stream.Close()
		} else {
			body.release()
		}
		return context.Background(), func() {}, r, false
	}
	t.replicaCopies.WithLabelValues(t.replicaLabel(c.replica)).Inc()
	ctx, cancel = c.context(h.copyCtx, t.timeout)
	held := limit.start(ctx, cancel, c.stream != nil)
	r = h.roundTrip(ctx, c, body, held)
	if limit.release(held) {
		r.outcome = cancelledLate
	}
	return ctx, cancel, r, true
}

// redirect returns req addressed to the replica rep instead.
func redirect(req *http.Request, rep *replica) *http.Request {
	cp := *req
	u := *req.URL
	u.Scheme, u.Host = rep.url.Scheme, rep.url.Host
	cp.URL = &u
	return &cp
}

// roundTripResult is what became of a copy's round trip to its shadow.
type roundTripResult struct {
	outcome    outcome
	dialFailed bool          // no connection was made: nothing reached the shadow
	req        *http.Request // as sent
	err        error         // why it failed
	status     int
	headers    time.Duration // until the response's headers came
	drained    int64         // response body bytes read
	drainErr   error
	duration   time.Duration
}

// roundTrip sends c to its shadow and reads the response: the part kept
// for comparison, then the rest up to maxDrainBytes, so that the
// connection can be reused. held takes the signs of the shadow's life
// that the concurrency limit learns from.
func (h *Handler) roundTrip(ctx context.Context, c pendingCopy, body *sharedBody, held *heldCopy) (r roundTripResult) {
	t := c.target
	r.outcome = failed
	defer func() {
		if err := recover(); err != nil {
			r.outcome, r.err = failed, errPanicked
			if ce := h.logger.Check(zapcore.ErrorLevel, "mirror request panicked"); ce != nil {
				ce.Write(zap.String("target", t.label), zap.Any("error", err), zap.ByteString("stack", debug.Stack()))
			}
		}
	}()
	req := c.req.WithContext(httptrace.WithClientTrace(ctx, held.trace()))
	r.req = req
	if c.stream != nil {
		req.Body, req.ContentLength = c.stream, c.stream.length
		c.stream.onTaken = held.alive
		defer func() {
			if reason, cut := c.stream.stop(); cut {
				r.outcome = reason
			}
		}()
	} else {
		req.Body, req.ContentLength = body.reader()
	}
	if len(req.Trailer) > 0 && req.Body != nil {
		req.ContentLength = -1 // HTTP/1 carries trailers only in chunked framing, as in reverse_proxy
	}

	start := now()
	resp, err := t.Transport.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		// A copy never asks to switch protocols (upgrade requests are not
		// copied), so a switch is refused, as reverse_proxy refuses one
		// that was not requested. The transport has handed the connection
		// over to the body, beyond the reach of ctx: closing the body is
		// what closes the connection.
		_ = resp.Body.Close()
		err = errUnrequestedSwitch
	}
	if err != nil {
		r.err, r.duration = err, now().Sub(start)
		r.dialFailed = errors.As(err, new(reverseproxy.DialError))
		return r
	}
	held.answer() // a response came, whether or not the transport traced its first byte
	r.headers = now().Sub(start)
	// Whatever the transport does with ctx, a body still being read when
	// the copy's time is up, or when the config is unloaded, is closed,
	// which closes its connection: no read outlives the copy.
	stopClosing := context.AfterFunc(ctx, func() { _ = resp.Body.Close() })
	defer stopClosing()
	if c.response != nil {
		c.response.ReadFrom(resp)
	}
	r.drained, r.drainErr = drain(resp)
	r.duration, r.status = now().Sub(start), resp.StatusCode
	if c.response != nil {
		c.response.Received(r.duration, resp.Trailer) // trailers complete once the body is drained
	}
	t.observe(resp.StatusCode, r.duration)
	r.outcome = mirrored
	return r
}

// drain reads and discards up to maxDrainBytes of a shadow's response, so
// that its connection can be reused, then closes it.
func drain(resp *http.Response) (int64, error) {
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
	closeErr := resp.Body.Close()
	if err == nil {
		err = closeErr
	}
	return n, err
}

// trace returns the hooks through which the transport tells c's limit
// that the shadow is alive: a connection made or taken from the pool, the
// request written, the response's first byte.
func (c *heldCopy) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		ConnectDone:          func(string, string, error) { c.alive() },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { c.alive() },
		GotConn:              func(httptrace.GotConnInfo) { c.alive() },
		WroteHeaders:         c.alive,
		WroteRequest:         func(httptrace.WroteRequestInfo) { c.wroteRequest() },
		GotFirstResponseByte: c.answer,
	}
}

// recordHealth tells the target's breaker what the copy's round trip says
// of its replica: an answer is a success, unless unhealthy_status or
// unhealthy_latency make it a failure; a failure, or a copy cancelled for
// waiting in silence, a failure; a copy cut short on the client's side or
// for lagging, or cancelled because its config is being unloaded, says
// nothing (the breaker outlives the config).
func (h *Handler) recordHealth(c pendingCopy, r roundTripResult) {
	health := c.replica.state.health
	if r.outcome.saysNothingOfHealth() || h.copyCtx.Err() != nil {
		if c.probe {
			health.cancelProbe()
		}
		return
	}
	health.record(r.outcome == mirrored && !c.target.unhealthyAnswer(r.status, r.headers), c.probe)
}

// logOutcome writes the copy's line: a warning when it failed or was
// cancelled for being late (at most one per message per second for each
// target), a debug line when it was mirrored.
func (h *Handler) logOutcome(c pendingCopy, r roundTripResult) {
	t := c.target
	switch r.outcome {
	case mirrored:
		if ce := h.logger.Check(zapcore.DebugLevel, "mirrored request"); ce != nil {
			ce.Write(
				zap.String("target", t.label),
				zap.String("replica", c.replica.dial),
				zap.Object("request", loggableCopy{r.req, t, c.clientIP}),
				zap.Int("status", r.status),
				zap.Int64("response_bytes_read", r.drained),
				zap.Duration("duration", r.duration),
				zap.NamedError("drain_error", r.drainErr),
			)
		}
	case cancelledLate, failed:
		msg, err := "mirror request failed", r.err
		if r.outcome == cancelledLate {
			// its error is only the cancellation's
			msg, err = "mirror request cancelled late: the target stopped answering", nil
		}
		if ce := t.sampledLogger.Check(zapcore.WarnLevel, msg); ce != nil {
			ce.Write(
				zap.String("target", t.label),
				zap.String("replica", c.replica.dial),
				zap.Object("request", loggableCopy{r.req, t, c.clientIP}),
				zap.Duration("duration", r.duration),
				zap.Error(err),
			)
		}
	}
}

// dropUnsent ends a copy that got no slot under its replica's limit
// within max_wait (dropped_concurrency), or before the config was
// unloaded (failed); sendTo has given back its body.
func (h *Handler) dropUnsent(c pendingCopy) {
	t := c.target
	if c.probe {
		c.replica.state.health.cancelProbe()
	}
	if c.ex != nil {
		c.response.Finish()
		c.ex.Release()
	}
	h.releaseInFlight(t)
	if h.copyCtx.Err() != nil {
		t.count(failed)
		return
	}
	t.count(droppedConcurrency)
}

// unloading reports whether the handler's config is being unloaded.
func (h *Handler) unloading() bool {
	return h.copyCtx.Err() != nil
}

var (
	// errUnrequestedSwitch is the error of a copy whose shadow answered
	// 101 Switching Protocols.
	errUnrequestedSwitch = errors.New("shadow switched protocols without being asked to (101)")
	// errPanicked is the error of a copy whose round trip panicked.
	errPanicked = errors.New("the round trip panicked")
)

// context returns the context of c's round trip: it ends at timeout, which
// for a streamed copy counts from the end of its body.
func (c pendingCopy) context(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if c.stream != nil {
		return c.stream.context(parent, timeout)
	}
	return context.WithTimeout(parent, timeout)
}

// newPendingCopy prepares r's copy to t, as admitted.
func newPendingCopy(t *Target, r *http.Request, a admission) pendingCopy {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return pendingCopy{target: t, replica: a.replica, req: t.newCopy(r, a.replica), clientIP: ip, probe: a.probe}
}

// pendingCopy is a copy that has been admitted but not yet sent: its
// request is fully prepared, every placeholder already resolved.
type pendingCopy struct {
	target   *Target
	replica  *replica // where it goes
	req      *http.Request
	clientIP string      // the client's, as Caddy's access log has it
	probe    bool        // the probe of an unhealthy target
	stream   *streamBody // the body, for a copy that streams it

	// For a copy whose response is compared or is a noise source: the
	// exchange it belongs to, where its response goes, and for a compared
	// copy, its noise copy's response (nil if it has none).
	ex       *compare.Exchange
	response *compare.Response
	noise    *compare.Response
}
