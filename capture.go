package mirror

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// capturedResponse is one response of a compared exchange, as it arrived:
// the primary's, captured as the route wrote it, or a shadow's, read by
// its copy. Its owner sets the fields and then closes done; readers wait
// on done first.
type capturedResponse struct {
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
}

func newCapturedResponse(keep int64) *capturedResponse {
	return &capturedResponse{done: make(chan struct{}), keep: keep}
}

// finish closes done once; only the response's owner calls it.
func (c *capturedResponse) finish() {
	if !c.finished {
		c.finished = true
		close(c.done)
	}
}

// write keeps the part of p that fits in the kept body.
func (c *capturedResponse) write(p []byte) {
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

// readFrom keeps a shadow's response: its status, headers and the first
// keep bytes of its body.
func (c *capturedResponse) readFrom(resp *http.Response) {
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

// releaseBody returns the kept body to the pool.
func (c *capturedResponse) releaseBody() {
	if c.body != nil {
		bufPool.Put(c.body)
		c.body = nil
	}
}

// captureWriter copies the primary's status, headers and the first bytes
// of its body into a capturedResponse as the route writes them. It is a
// plain memory copy: every write, flush and hijack goes through unchanged.
type captureWriter struct {
	*caddyhttp.ResponseWriterWrapper
	resp        *capturedResponse
	wroteHeader bool
	announced   []string // the trailer fields that the Trailer header announced
}

// newCaptureWriter wraps w to capture what the route writes into resp.
func newCaptureWriter(w http.ResponseWriter, resp *capturedResponse) *captureWriter {
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

// decodedResponse is a captured response whose body has been decoded from
// its Content-Encoding.
type decodedResponse struct {
	status    int
	header    http.Header
	trailer   http.Header
	body      []byte
	truncated bool
	bodyErr   error
	pooled    *bytes.Buffer // the decoded body's buffer, when one was used
	// the Content-Encoding that could not be decoded; body is then the
	// encoded bytes, comparable only with the same encoding's
	undecoded string

	parsed  bool // json and jsonErr are set
	json    any
	jsonErr error
}

// decode returns c with its body decoded, keeping at most limit decoded
// bytes. Release must be called when the result is no longer needed.
func decode(c *capturedResponse, limit int64) decodedResponse {
	d := decodedResponse{status: c.status, header: c.header, trailer: c.trailer, truncated: c.truncated, bodyErr: c.bodyErr}
	var raw []byte
	if c.body != nil {
		raw = c.body.Bytes()
	}
	if int64(len(raw)) > limit {
		d.truncated = true
	}
	if d.truncated || d.bodyErr != nil {
		return d
	}
	encoding := strings.ToLower(strings.TrimSpace(c.header.Get("Content-Encoding")))
	if encoding == "" || encoding == "identity" || len(raw) == 0 {
		d.body = raw
		return d
	}
	d.pooled = bufPool.Get().(*bytes.Buffer)
	d.pooled.Reset()
	if err := decompress(d.pooled, encoding, raw, limit); err != nil {
		switch {
		case errors.Is(err, errTooLarge):
			d.truncated = true
		case errors.Is(err, errUnsupportedEncoding):
			d.release()
			d.body, d.undecoded = raw, encoding
		default:
			d.bodyErr = err
		}
		return d
	}
	d.body = d.pooled.Bytes()
	return d
}

// release returns the decoded body's buffer to the pool.
func (d *decodedResponse) release() {
	if d.pooled != nil {
		bufPool.Put(d.pooled)
		d.pooled = nil
		d.body = nil
	}
}

var (
	errTooLarge            = errors.New("decoded body is over max_body_size")
	errUnsupportedEncoding = errors.New("unsupported Content-Encoding")
)

// maxZstdWindow is the largest zstd window a comparison decodes with, the
// most that browsers accept in a Content-Encoding (RFC 8878 recommends
// that decoders support 8 MB); a frame that asks for more is a body
// error, and costs no allocation.
const maxZstdWindow = 8 << 20

// decodeSlots bounds how many bodies are decompressed at once, across
// every comparison of the process: each decoder may hold a window (up to
// 16 MiB for br, maxZstdWindow for zstd, 32 KiB for gzip) that a shadow
// chooses with a few bytes, so the decoders' memory is at most
// cap(decodeSlots) of those windows whatever the shadows send.
var decodeSlots = make(chan struct{}, 4)

// decompress writes raw, decoded from encoding, to dst, failing with
// errTooLarge past limit bytes. It uses the decoders that Caddy's encode
// module uses for gzip and zstd, and andybalholm/brotli for br. It waits
// for one of decodeSlots.
func decompress(dst *bytes.Buffer, encoding string, raw []byte, limit int64) error {
	decodeSlots <- struct{}{}
	defer func() { <-decodeSlots }()
	var r io.Reader
	switch encoding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(raw))
	case "zstd":
		zr := zstdPool.Get().(*zstd.Decoder)
		defer zstdPool.Put(zr)
		if err := zr.Reset(bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("zstd: %v", err)
		}
		r = zr
	default:
		return fmt.Errorf("%w %q", errUnsupportedEncoding, encoding)
	}
	n, err := io.Copy(dst, io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s: %v", encoding, err)
	case n > limit:
		return errTooLarge
	}
	return nil
}

var zstdPool = sync.Pool{New: func() any {
	zr, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxZstdWindow))
	return zr
}}
