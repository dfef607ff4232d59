package compare

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Response is one response of a compared exchange, as it arrived:
// the primary's, captured as the route wrote it, or a shadow's, read by
// its copy. Its owner sets the fields and then closes done; readers wait
// on done first.
type Response struct {
	done      chan struct{}
	got       bool // a complete set of headers arrived
	status    int
	header    http.Header
	body      *bytes.Buffer // pooled; the first keep bytes of the body
	keep      int64
	truncated bool  // the body had more than keep bytes
	bodyErr   error // reading the body failed
	streaming bool  // the primary's response has no end to wait for: hijacked, switched protocols, or SSE
	// the primary's response never reached its client whole: the client
	// went away (reverse_proxy's 499), or writing to it failed
	incomplete bool
	trailer    http.Header // the trailers, once the body has ended
	duration   time.Duration
	finished   bool // done is closed; touched only by the owner
	// the endpoint named by the target's endpoint_from, resolved on the
	// request path
	endpointHint string
}

func newResponse(keep int64) *Response {
	return &Response{done: make(chan struct{}), keep: keep}
}

// Finish closes done once, when the owner has set everything it will:
// the comparisons waiting for the response may then read it. Only the
// response's owner calls it.
func (c *Response) Finish() {
	if !c.finished {
		c.finished = true
		close(c.done)
	}
}

// write keeps the part of p that fits in the kept body.
func (c *Response) write(p []byte) {
	if c.keep == 0 || c.truncated || len(p) == 0 {
		return
	}
	if c.body == nil {
		c.body = bufPool.Get().(*bytes.Buffer)
		c.body.Reset()
	}
	room := c.keep - int64(c.body.Len())
	if int64(len(p)) > room {
		c.body.Write(p[:room])
		c.truncated = true
		return
	}
	c.body.Write(p)
}

// ReadFrom keeps a shadow's response: its status, headers and the first
// keep bytes of its body.
func (c *Response) ReadFrom(resp *http.Response) {
	c.got = true
	c.status = resp.StatusCode
	c.header = resp.Header
	if c.keep == 0 {
		return
	}
	c.body = bufPool.Get().(*bytes.Buffer)
	c.body.Reset()
	_, err := c.body.ReadFrom(io.LimitReader(resp.Body, c.keep+1))
	if int64(c.body.Len()) > c.keep {
		c.body.Truncate(int(c.keep))
		c.truncated = true
	} else if err != nil {
		c.bodyErr = err
	}
}

// Received records how long the shadow's exchange took and its trailers,
// once its body has been read to its end.
func (c *Response) Received(duration time.Duration, trailer http.Header) {
	c.duration, c.trailer = duration, trailer
}

// releaseBody returns the kept body to the pool.
func (c *Response) releaseBody() {
	if c.body != nil {
		bufPool.Put(c.body)
		c.body = nil
	}
}

// captureWriter copies the primary's status, headers and the first bytes
// of its body into a Response as the route writes them. It is a
// plain memory copy: every write, flush and hijack goes through unchanged.
type captureWriter struct {
	*caddyhttp.ResponseWriterWrapper
	resp        *Response
	wroteHeader bool
	announced   []string // the trailer fields that the Trailer header announced
}

// newCaptureWriter wraps w to capture what the route writes into resp.
func newCaptureWriter(w http.ResponseWriter, resp *Response) *captureWriter {
	return &captureWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, resp: resp}
}

// settle captures the response's trailers once the route has ended: the
// fields that the Trailer header announced, and those set with
// http.TrailerPrefix, as net/http sends them. aborted says that the route
// did not deliver the whole response: it failed because the client went
// away before the answer (as reverse_proxy does) or panicked (as
// reverse_proxy aborts a response cut off mid-body). A client
// that hangs up once it has every byte, as a decompressing client may
// before the last chunk's terminator, leaves the response complete.
func (w *captureWriter) settle(aborted bool) {
	if aborted {
		w.resp.incomplete = true
	}
	if !w.wroteHeader {
		// nothing went through the writer: net/http writes its implicit
		// 200 after the route, or Caddy an error, past the capture, so
		// there is no response to compare, nor trailers of it
		return
	}
	hdr := w.Header()
	for _, name := range w.announced {
		if v, ok := hdr[name]; ok {
			w.addTrailer(name, v)
		}
	}
	for k, v := range hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			w.addTrailer(http.CanonicalHeaderKey(name), v)
		}
	}
}

func (w *captureWriter) addTrailer(name string, values []string) {
	if w.resp.trailer == nil {
		w.resp.trailer = make(http.Header)
	}
	w.resp.trailer[name] = append(w.resp.trailer[name], values...)
}

// WriteHeader implements http.ResponseWriter.
func (w *captureWriter) WriteHeader(status int) {
	if status == statusClientClosedRequest {
		// reverse_proxy's record of a client that went away, written
		// even after the response has begun
		w.resp.incomplete = true
	}
	if !w.wroteHeader && (status < 100 || status > 199 || status == http.StatusSwitchingProtocols) {
		w.wroteHeader = true
		w.resp.got = true
		w.resp.status = status
		w.resp.header = w.Header().Clone()
		for _, v := range w.resp.header["Trailer"] {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" {
					w.announced = append(w.announced, http.CanonicalHeaderKey(name))
				}
			}
		}
		if status == http.StatusSwitchingProtocols || strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
			w.resp.streaming = true
		}
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

// Write implements http.ResponseWriter.
func (w *captureWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriterWrapper.Write(p)
	if !w.resp.streaming {
		w.resp.write(p[:n])
	}
	if err != nil {
		w.resp.incomplete = true
	}
	return n, err
}

// ReadFrom implements io.ReaderFrom, so that what is copied this way is
// captured too.
func (w *captureWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{w}, r)
}

// Flush implements http.Flusher. A flushed response is still compared
// once it ends: reverse_proxy flushes every response of unknown length.
func (w *captureWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is the form of Flush that http.ResponseController prefers.
func (w *captureWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK) // as net/http does on a flush before any write
	}
	err := http.NewResponseController(w.ResponseWriterWrapper.ResponseWriter).Flush()
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		w.resp.incomplete = true
	}
	return err
}

// Hijack implements http.Hijacker; a hijacked response is not compared.
func (w *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.resp.streaming = true
	return http.NewResponseController(w.ResponseWriterWrapper.ResponseWriter).Hijack()
}

// statusClientClosedRequest is the status that reverse_proxy writes when
// the client went away before the response was complete.
const statusClientClosedRequest = 499

// writerOnly hides every method but Write, so that io.Copy cannot loop
// back into ReadFrom.
type writerOnly struct{ io.Writer }

// bufPool holds the buffers that bodies are kept and decoded into.
var bufPool = sync.Pool{
	New: func() any { return new(bytes.Buffer) },
}
