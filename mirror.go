// Package mirror implements the http.handlers.mirror Caddy module, which
// shadows live traffic: chosen requests are copied, headers and body, to
// one or more shadow upstreams while the rest of the route (usually
// reverse_proxy) serves the real response. Copies are fire and forget: the
// shadow's response is read and thrown away, and nothing on the request
// path ever waits for a mirror.
//
// The words the code uses, each for one thing:
//
//   - target: one shadow that the handler copies requests to, with its own
//     selection (matchers, percent, sampling, rate), limits, transport and
//     counters; configured as a Target;
//   - copy: one chosen request, prepared for one target (pendingCopy);
//   - round trip: a copy's request to its shadow and the reading of the
//     response (send.go);
//   - outcome: what became of a copy, one per selected request and target,
//     counted in caddy_http_mirror_requests_total (outcome.go);
//   - shadow state: what the mirror learns about a shadow across config
//     loads, its concurrency limit and circuit breaker (shadowstate.go);
//   - exchange: one request whose responses are compared: the primary's and
//     those of its compared and noise copies (package compare);
//   - report: what a comparing target's exchanges showed, served by the
//     admin API and mirror_report (package compare).
//
// Files, in the order a request meets them: serve.go (ServeHTTP, the
// dispatch; hold.go holds copies for wait_for_primary), select.go and
// sampler.go (which requests a target chooses), admit.go (the checks and
// slots a copy takes, and its replica: pool.go), copy.go (the copy's
// request), body.go and stream.go (its body, whole or
// streamed), send.go (its round trip and outcome), copylog.go, outcome.go;
// then the state behind them: limiter.go, lateness.go, health.go,
// shadowstate.go; and the configuration: mirror.go (the module and its
// lifecycle), target.go, target_validate.go, upstreams.go and
// targetpool.go (a target's replicas, static or dynamic), activehealth.go
// (reverse_proxy's active health checks on them), concurrency.go,
// transport.go, marker.go, prefix.go, names.go, comparison.go,
// caddyfile*.go; targetsapi.go serves the replicas on the admin API.
//
//   - replica: one upstream of a target's pool, with its own shadow state
//     (pool.go).
package mirror

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler copies requests to shadow upstreams ("targets") and passes the
// original down the route unchanged. Each target chooses its requests on its
// own (matchers, percent, sticky sampling, a rate cap), and each chosen
// request is sent to it asynchronously with its method, URI, headers and
// body. The shadows' responses are discarded: the client only ever sees the
// primary's response, and a slow, hung or failing shadow cannot change it.
//
// A body up to max_body_size is buffered and each copy sent once it is
// complete; a larger one is streamed to the copies as the primary reads it,
// and a copy whose shadow falls stream_window bytes behind is cut off.
//
// Memory is bounded: at most max_in_flight copies exist at once, each holding
// at most max_body_size + stream_window bytes of body. A copy that is not
// sent, or not sent whole, is counted, with its reason, in
// caddy_http_mirror_requests_total.
type Handler struct {
	// The shadow upstreams to copy requests to. Each target decides on its
	// own which requests it gets, so one request may be copied to several
	// targets. At least one target is required.
	Targets []*Target `json:"targets,omitempty"`

	// The largest request body, in bytes, that is buffered and copied whole
	// once complete. A larger body is streamed to the copies as the primary
	// reads it (see large_bodies). Must not be negative.
	// Default: 1048576 (1 MiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// What becomes of the copies of a request whose body is larger than
	// max_body_size: "stream" sends each copy the buffered prefix, then the
	// rest of the body as the primary reads it; "skip" does not copy the
	// request (outcome skipped_body_too_large). Either way the primary gets
	// the body byte for byte and without delay. Default: "stream".
	LargeBodies string `json:"large_bodies,omitempty"`

	// How many bytes of a streamed body each copy may hold that its shadow
	// has not yet taken. A copy that falls further behind is cut off: its
	// request is aborted and its connection closed (outcome cut_off_slow);
	// the primary never waits for it. The window must cover the time a
	// shadow takes to connect and keep pace: 4 MiB is 40 ms of a client
	// uploading at 100 MB/s. Reads of the body are at most this
	// long while copies may stream. From 4096 to 1073741824.
	// Default: 4194304 (4 MiB).
	StreamWindow int64 `json:"stream_window,omitempty"`

	// How many bytes, shared by all of this handler's streamed copies, a
	// copy that has fallen stream_window behind may hold beyond its window,
	// for at most a second, before it is cut off (see stream.go): a fast
	// shadow's transport stalled for a moment by a busy machine lets the
	// primary run ahead of it by the window in milliseconds. -1 (in the
	// Caddyfile, stream_slack 0) lends nothing: a copy is cut off as soon
	// as it is a window behind. Default: 67108864 (64 MiB).
	StreamSlack int64 `json:"stream_slack,omitempty"`

	// The largest body, in bytes, that is streamed. A body known from its
	// Content-Length to be larger is not copied (skipped_body_too_large);
	// one that grows past it is cut off (cut_off_too_large). Must not be
	// negative. Default: 0, no cap.
	MaxStreamSize int64 `json:"max_stream_size,omitempty"`

	// The most copies that may be in flight at once for this handler,
	// across all targets, counting copies whose body is still arriving:
	// the hard ceiling that bounds memory. Each target also has its own
	// limit (see Concurrency), whose ceiling defaults to an equal share of
	// this one, so that a target that hangs cannot take the slots of the
	// others; only ceilings set to add up to more than max_in_flight let
	// targets compete for slots. A copy over the limit is dropped at once
	// (outcome dropped_in_flight); nothing on the request path waits for a
	// slot. Must not be negative. Default: 1024.
	MaxInFlight int `json:"max_in_flight,omitempty"`

	// The value of the Caddy-Mirror header that marks this handler's
	// copies (see marker.go): a request that arrives with a marker of
	// this process is a copy coming back and is not copied again, and one
	// with any other Caddy-Mirror value has the header removed, so that a
	// client can neither keep its requests out of the mirror nor pass
	// them off as copies. Placeholders known at load, such as {env.*}, are
	// expanded. Set the same value on Caddy instances that mirror to each
	// other's shadows, so that each recognises the other's copies.
	// Default: a random value made when the process starts.
	Marker string `json:"marker,omitempty"`

	// When set, how long, at most, a copy that is complete (its body with
	// it) waits for the primary's response before it is sent: it goes
	// once the rest of the route has returned, or after this long,
	// whichever comes first, as Traefik sends its copies after the
	// response. A streamed copy goes alongside the primary's request
	// whatever this says. Must not be negative. Default: 0, each copy is
	// sent as soon as it is complete.
	WaitForPrimary caddy.Duration `json:"wait_for_primary,omitempty"`

	copyCtx         context.Context // parent of every copy; cancelled by Cleanup
	cancel          context.CancelFunc
	inFlight        *atomic.Int64
	mu              *sync.RWMutex // guards closed against wg.Add
	closed          bool
	wg              *sync.WaitGroup
	logger          *zap.Logger
	comparing       bool            // a target compares its responses
	keepPrimaryBody int64           // how much of the primary's body comparisons need
	slack           *streamSlack    // what lagging streamed copies borrow from
	marker          string          // the marker's value on this handler's copies
	markerHeld      bool            // marker is in the markers pool
	claimed         []comparingName // the names its comparing targets hold
}

const (
	defaultMaxBodySize  = 1 << 20
	defaultMaxInFlight  = 1024
	defaultStreamWindow = 4 << 20
	defaultStreamSlack  = 64 << 20
	minStreamWindow     = 4096
	maxStreamWindow     = 1 << 30
	defaultTimeout      = 10 * time.Second
	defaultMaxFails     = 5
	defaultFailDuration = 10 * time.Second

	// cleanupGracePeriod is how long Cleanup lets copies in flight finish
	// before it cancels them.
	cleanupGracePeriod = 2 * time.Second

	// maxDrainBytes is how much of a shadow's response body is read (and
	// discarded) so that its connection can be reused; past that the
	// connection is closed instead.
	maxDrainBytes = 256 << 10
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mirror",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision implements caddy.Provisioner.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	// Copies outlive the client's request but not the config: Cleanup
	// cancels this context after a grace period. It is detached from ctx
	// because Caddy cancels ctx before it calls Cleanup.
	copyCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// Caddy's transports may read a replacer from the context (for a TLS
	// server_name with placeholders); copies share one that knows nothing
	// of any request, so that none reaches the original's.
	h.copyCtx, h.cancel = context.WithValue(copyCtx, caddy.ReplacerCtxKey, caddy.NewReplacer()), cancel
	h.inFlight = new(atomic.Int64)
	h.mu = new(sync.RWMutex)
	h.wg = new(sync.WaitGroup)

	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBodySize
	}
	if h.MaxInFlight == 0 {
		h.MaxInFlight = defaultMaxInFlight
	}
	if h.LargeBodies == "" {
		h.LargeBodies = largeBodiesStream
	}
	if h.StreamWindow == 0 {
		h.StreamWindow = defaultStreamWindow
	}
	h.slack = new(streamSlack)
	switch {
	case h.StreamSlack == 0:
		h.slack.left.Store(defaultStreamSlack)
	case h.StreamSlack > 0:
		h.slack.left.Store(h.StreamSlack)
	}

	if err := h.provisionMarker(); err != nil {
		return err
	}
	metrics, err := newMirrorMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	share := max(h.MaxInFlight/max(len(h.Targets), 1), 1)
	for i, t := range h.Targets {
		if t == nil {
			return fmt.Errorf("targets[%d]: target is empty", i)
		}
		t.marker = h.marker
		if err := t.provision(ctx, metrics, max(h.MaxInFlight, 1), share); err != nil {
			return fmt.Errorf("targets[%d]: %v", i, err)
		}
	}
	if err := linkTargets(h.Targets); err != nil {
		return err
	}
	if err := h.claimComparingNames(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	for _, t := range h.Targets {
		h.comparing = h.comparing || t.Compare != nil
		h.keepPrimaryBody = max(h.keepPrimaryBody, t.comparison.keep)
	}
	return nil
}

// Validate implements caddy.Validator.
func (h *Handler) Validate() error {
	if len(h.Targets) == 0 {
		return fmt.Errorf("targets: at least one target is required")
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must not be negative, got %d", h.MaxBodySize)
	}
	if h.MaxInFlight < 0 {
		return fmt.Errorf("max_in_flight must not be negative, got %d", h.MaxInFlight)
	}
	if h.LargeBodies != largeBodiesStream && h.LargeBodies != largeBodiesSkip {
		return fmt.Errorf("large_bodies must be %q or %q, got %q", largeBodiesStream, largeBodiesSkip, h.LargeBodies)
	}
	if err := checkStreamWindow(h.StreamWindow); err != nil {
		return err
	}
	if h.StreamSlack < -1 {
		return fmt.Errorf("stream_slack must be -1 (none) or a size, got %d", h.StreamSlack)
	}
	if h.WaitForPrimary < 0 {
		return fmt.Errorf("wait_for_primary must not be negative, got %v", time.Duration(h.WaitForPrimary))
	}
	if h.MaxStreamSize < 0 {
		return fmt.Errorf("max_stream_size must not be negative, got %d", h.MaxStreamSize)
	}
	for i, t := range h.Targets {
		if err := t.validate(); err != nil {
			return fmt.Errorf("targets[%d]: %v", i, err)
		}
		if t.Concurrency != nil {
			if err := t.Concurrency.validate(h.MaxInFlight); err != nil {
				return fmt.Errorf("targets[%d]: %v", i, err)
			}
		}
	}
	return nil
}

// checkStreamWindow checks a stream_window.
func checkStreamWindow(size int64) error {
	if size < minStreamWindow || size > maxStreamWindow {
		return fmt.Errorf("stream_window must be between 4KiB (%d) and 1GiB (%d), got %d", minStreamWindow, maxStreamWindow, size)
	}
	return nil
}

// Cleanup implements caddy.CleanerUpper. It stops new copies, lets the
// copies in flight finish within a short grace period, then cancels the
// rest and waits for them, so that no copy outlives the config.
func (h *Handler) Cleanup() error {
	if h.mu != nil { // provisioned
		h.stopCopies()
	}
	h.releaseMarker()
	h.releaseComparingNames()
	for _, t := range h.Targets {
		if t == nil {
			continue
		}
		t.closePool()
		t.closeComparer() // only now that no copy can still be comparing
		// connections that copies gave back after the transport was
		// cleaned up would stay idle until their idle timeout
		if ht, ok := t.Transport.(*reverseproxy.HTTPTransport); ok && ht.Transport != nil {
			ht.Transport.CloseIdleConnections()
		}
	}
	return nil
}

// stopCopies stops new copies, lets the copies in flight finish within
// the grace period, then cancels the rest and waits for them.
func (h *Handler) stopCopies() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()

	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	grace := time.NewTimer(cleanupGracePeriod)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
	}
	h.cancel()
	<-done
}

// streams reports whether a body larger than max_body_size is streamed.
func (h *Handler) streams() bool {
	return h.LargeBodies == largeBodiesStream
}

// The values of large_bodies.
const (
	largeBodiesStream = "stream"
	largeBodiesSkip   = "skip"
)

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
