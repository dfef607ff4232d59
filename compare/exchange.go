package compare

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Exchange is one request whose responses are compared: the primary's
// response, captured as the route writes it, and the responses of its
// copies that compare or supply noise. Its buffers are shared by the
// primary's side and every such copy, reference-counted, and returned to
// the pool exactly once, by whichever side lets go last.
//
// Its life: NewExchange, then AddResponse for each copy whose response is
// kept, then Start, on the request path; CaptureWriter wraps the route's
// writer and FinishPrimary ends the primary's side; each copy finishes
// its Response, compares, and calls Release.
type Exchange struct {
	primary  *Response
	capture  *captureWriter // the primary's, once the route runs
	start    time.Time
	method   string
	path     string
	rawQuery string
	shadows  []*Response
	refs     atomic.Int32
}

// NewExchange starts the exchange of r, keeping up to keepPrimary bytes of
// the primary's response body.
func NewExchange(r *http.Request, keepPrimary int64) *Exchange {
	return &Exchange{
		primary:  newResponse(keepPrimary),
		start:    time.Now(),
		method:   r.Method,
		path:     r.URL.EscapedPath(),
		rawQuery: r.URL.RawQuery,
	}
}

// AddResponse returns where a copy's response goes, keeping up to keep
// bytes of its body. It must be called before Start.
func (ex *Exchange) AddResponse(keep int64) *Response {
	resp := newResponse(keep)
	ex.shadows = append(ex.shadows, resp)
	return resp
}

// Start counts the references to the exchange: the primary's side and
// one for each response added. Each must Release it once.
func (ex *Exchange) Start() {
	ex.refs.Store(int32(1 + len(ex.shadows)))
}

// CaptureWriter wraps w, the route's response writer, so that the
// primary's response is captured into the exchange as the route writes
// it. It is a plain memory copy: every write, flush and hijack goes
// through unchanged.
func (ex *Exchange) CaptureWriter(w http.ResponseWriter) http.ResponseWriter {
	ex.capture = newCaptureWriter(w, ex.primary)
	return ex.capture
}

// FinishPrimary ends the primary's side of the exchange, once the route
// has returned or panicked, and releases the side's reference; aborted
// says that the route did not deliver the whole response (see
// captureWriter.settle).
func (ex *Exchange) FinishPrimary(aborted bool) {
	if ex.capture != nil {
		ex.capture.settle(aborted)
	}
	ex.primary.duration = time.Since(ex.start)
	ex.primary.Finish()
	ex.Release()
}

// Release drops one side's reference; the last one returns every buffer
// of the exchange to the pool.
func (ex *Exchange) Release() {
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
var onExchangeReleased atomic.Pointer[func(*Exchange)]

// sampleURI is the request's URI as kept in samples and logs: its path,
// and its query only when c allows it.
func (ex *Exchange) sampleURI(c *Config) string {
	if c.SamplesIncludeQuery && ex.rawQuery != "" {
		return ex.path + "?" + ex.rawQuery
	}
	return ex.path
}
