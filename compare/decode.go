package compare

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

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
func decode(c *Response, limit int64) decodedResponse {
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
