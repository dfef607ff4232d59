package mirror

import (
	"context"
	"errors"
	"net/http"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// send performs one copy's exchange with its target and records the
// outcome. It runs in its own goroutine, on a context that outlives the
// client's request, and never touches the original request.
func (h *Handler) send(c pendingCopy, body *sharedBody) {
	t := c.target
	result := failed
	var held *heldCopy // once started under the concurrency limit
	defer h.wg.Done()
	defer func() {
		if err := recover(); err != nil {
			result = failed
			if ce := h.logger.Check(zapcore.ErrorLevel, "mirror request panicked"); ce != nil {
				ce.Write(
					zap.String("target", t.label),
					zap.Any("error", err),
					zap.ByteString("stack", debug.Stack()),
				)
			}
		}
		// the slot is free and the target's health updated before the
		// outcome is counted, so that a counted copy is never in flight
		if h.release(t, held, result == mirrored) {
			result = cancelledLate
		}
		if result.saysNothingOfHealth() {
			if c.probe {
				t.health.cancelProbe()
			}
		} else {
			t.health.record(result == mirrored, c.probe)
		}
		t.count(result)
	}()

	ctx, cancel := c.context(h.copyCtx, t.timeout)
	defer cancel()
	if c.stream == nil {
		// a streamed copy takes as long as its upload: its lateness
		// says nothing, and its stream_window cuts off a shadow that
		// stops taking it
		held = t.limit.start(ctx, cancel)
	}
	if c.ex != nil {
		defer func() {
			c.response.finish()
			if t.Compare != nil && result == mirrored {
				h.compareCopy(ctx, c)
			}
			c.ex.release()
		}()
	}
	req := c.req.WithContext(ctx)
	if c.stream != nil {
		req.Body, req.ContentLength = c.stream, c.stream.length
		defer func() {
			if reason, cut := c.stream.stop(); cut {
				result = reason
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
		if ce := h.sampledLogger.Check(zapcore.WarnLevel, "mirror request failed"); ce != nil {
			ce.Write(
				zap.String("target", t.label),
				zap.Object("request", loggableCopy{req, t}),
				zap.String("uri", req.URL.RequestURI()),
				zap.Duration("duration", now().Sub(start)),
				zap.Error(err),
			)
		}
		return
	}
	// Whatever the transport does with ctx, a body still being read when
	// the copy's time is up, or when the config is unloaded, is closed,
	// which closes its connection: no read outlives the copy.
	stopClosing := context.AfterFunc(ctx, func() { _ = resp.Body.Close() })
	defer stopClosing()
	if c.response != nil {
		c.response.readFrom(resp)
	}
	drained, drainErr := drain(resp)
	duration := now().Sub(start)
	if c.response != nil {
		c.response.duration = duration
		c.response.trailer = resp.Trailer // complete once the body is drained
	}
	t.observe(resp.StatusCode, duration)
	result = mirrored
	if ce := h.logger.Check(zapcore.DebugLevel, "mirrored request"); ce != nil {
		ce.Write(
			zap.String("target", t.label),
			zap.Object("request", loggableCopy{req, t}),
			zap.String("uri", req.URL.RequestURI()),
			zap.Int("status", resp.StatusCode),
			zap.Int64("response_bytes_read", drained),
			zap.Duration("duration", duration),
			zap.NamedError("drain_error", drainErr),
		)
	}
}

// errUnrequestedSwitch is the error of a copy whose shadow answered 101
// Switching Protocols.
var errUnrequestedSwitch = errors.New("shadow switched protocols without being asked to (101)")

// context returns the context of c's exchange: it ends at timeout, which
// for a streamed copy counts from the end of its body.
func (c pendingCopy) context(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if c.stream != nil {
		return c.stream.context(parent, timeout)
	}
	return context.WithTimeout(parent, timeout)
}

// pendingCopy is a copy that has been admitted but not yet sent: its
// request is fully prepared, every placeholder already resolved.
type pendingCopy struct {
	target *Target
	req    *http.Request
	probe  bool        // the probe of an unhealthy target
	stream *streamBody // the body, for a copy that streams it

	// For a copy whose response is compared or is a noise source: the
	// exchange it belongs to, where its response goes, and for a compared
	// copy, its noise copy's response (nil if it has none).
	ex       *exchange
	response *capturedResponse
	noise    *capturedResponse
}
