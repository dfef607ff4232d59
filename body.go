package mirror

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// teeBody wraps the request body that the primary reads, copying what it
// reads into a pooled buffer capped at max_body_size. It never reads ahead:
// the primary gets every byte exactly when it asks for it. When the body
// reaches its end the copies are dispatched. When it turns out larger than
// max_body_size, the copies are dispatched at once, each streaming the
// buffered prefix and then the rest of the body as the primary reads it
// (see streamBody), or, with large_bodies skip, they are abandoned. When
// the body ends in an error or is closed early, buffered copies are
// abandoned and streamed ones cut off.
//
// The primary's transport may read and close the body in another goroutine,
// even after ServeHTTP has returned, so every state change is locked.
type teeBody struct {
	io.ReadCloser // the original body

	h             *Handler
	limit         int64
	maxRead       int          // the most read at once while copies may stream; 0: no cap
	contentLength int64        // -1 when unknown
	wait          *primaryWait // what complete copies wait for (wait_for_primary); nil: nothing

	mu      sync.Mutex
	buf     *bytes.Buffer // nil once settled or streaming
	copies  []pendingCopy
	streams []*streamBody // the copies streaming; nil until then
	read    int64         // body bytes the primary has read
	settled bool
}

func newTeeBody(h *Handler, body io.ReadCloser, copies []pendingCopy, contentLength int64) *teeBody {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if contentLength > 0 {
		buf.Grow(int(min(contentLength, h.MaxBodySize)))
	}
	b := &teeBody{ReadCloser: body, h: h, limit: h.MaxBodySize, contentLength: contentLength, buf: buf, copies: copies}
	if h.streams() {
		// a single read never overflows a copy's empty window
		b.maxRead = int(h.StreamWindow)
	}
	return b
}

// Read implements io.Reader, copying what the primary reads.
func (b *teeBody) Read(p []byte) (int, error) {
	if b.maxRead > 0 && len(p) > b.maxRead {
		p = p[:b.maxRead] // a short read, which io.Reader allows
	}
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		return n, err
	}
	if n > 0 {
		b.read += int64(n)
		switch {
		case b.streams != nil:
			b.stream(p[:n])
		case int64(b.buf.Len())+int64(n) <= b.limit:
			b.buf.Write(p[:n])
		case b.maxRead == 0:
			b.settleLocked(skippedBodyTooLarge)
			return n, err
		default:
			b.startStreaming()
			b.stream(p[:n])
		}
	}
	switch {
	case b.settled:
	case err == io.EOF && b.streams != nil:
		for _, s := range b.streams {
			s.finish()
		}
		b.settled = true
	case err == io.EOF:
		b.complete()
	case err != nil:
		b.settleLocked(skippedBodyIncomplete)
	}
	return n, err
}

// Close implements io.Closer. A body closed before its end was not read
// to the end, so its copies are abandoned.
func (b *teeBody) Close() error {
	b.settle(skippedBodyIncomplete)
	return b.ReadCloser.Close()
}

// settle abandons the copies with reason, unless the body has already
// been settled.
func (b *teeBody) settle(reason outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.settled {
		b.settleLocked(reason)
	}
}

// settleLocked abandons buffered copies with reason; streamed copies are
// cut off, as cut_off_incomplete when reason is skipped_body_incomplete.
func (b *teeBody) settleLocked(reason outcome) {
	b.settled = true
	if b.streams != nil {
		if reason == skippedBodyIncomplete {
			reason = cutOffIncomplete
		}
		for _, s := range b.streams {
			s.cutOff(reason)
		}
		b.streams = nil
		return
	}
	b.h.abandon(b.copies, reason)
	b.copies = nil
	bufPool.Put(b.buf)
	b.buf = nil
}

// complete hands the finished body to the copies and dispatches them, at
// once or, with wait_for_primary, after the primary.
func (b *teeBody) complete() {
	b.settled = true
	b.h.dispatchAfter(b.wait, b.copies, newSharedBody(b.buf, len(b.copies)))
	b.copies = nil
	b.buf = nil
}

// startStreaming dispatches the copies with the buffered prefix; from now
// on they take the body as the primary reads it.
func (b *teeBody) startStreaming() {
	prefix := newSharedBody(b.buf, len(b.copies))
	length := b.contentLength
	if length <= 0 {
		length = -1
	}
	b.streams = make([]*streamBody, len(b.copies))
	for i := range b.copies {
		b.streams[i] = newStreamBody(prefix, int(b.h.StreamWindow), b.h.slack, length)
		b.copies[i].stream = b.streams[i]
	}
	b.h.dispatch(b.copies, nil)
	b.copies = nil
	b.buf = nil
}

// stream hands p, which the primary has just read, to the streaming
// copies. The body settles once no copy takes bytes any more.
func (b *teeBody) stream(p []byte) {
	if limit := b.h.MaxStreamSize; limit > 0 && b.read > limit {
		b.settleLocked(cutOffTooLarge)
		return
	}
	live := 0
	for _, s := range b.streams {
		if s.write(p) {
			live++
		}
	}
	if live == 0 {
		b.settled = true
		b.streams = nil
	}
}

// sharedBody is one complete request body, read by several copies at once.
// Its buffer goes back to the pool exactly once, when the last copy's
// transport closes its reader. A nil *sharedBody is an empty body.
type sharedBody struct {
	buf  *bytes.Buffer
	refs atomic.Int32
}

func newSharedBody(buf *bytes.Buffer, refs int) *sharedBody {
	s := &sharedBody{buf: buf}
	s.refs.Store(int32(refs))
	return s
}

// reader returns a new reader over the body and its length, for one copy,
// which must close it (an http.RoundTripper always does) or release it.
func (s *sharedBody) reader() (io.ReadCloser, int64) {
	if s == nil {
		return nil, 0
	}
	if s.buf.Len() == 0 {
		s.release()
		return nil, 0
	}
	return &copyBody{Reader: bytes.NewReader(s.buf.Bytes()), shared: s}, int64(s.buf.Len())
}

// retain adds a reference to the body, for a copy that may send it twice.
func (s *sharedBody) retain() {
	if s != nil {
		s.refs.Add(1)
	}
}

// release drops one copy's reference to the body.
func (s *sharedBody) release() {
	if s == nil {
		return
	}
	if s.refs.Add(-1) == 0 {
		bufPool.Put(s.buf)
		s.buf = nil
	}
}

// copyBody is one copy's reader over a sharedBody.
type copyBody struct {
	*bytes.Reader
	shared *sharedBody
	closed atomic.Bool
}

// Close implements io.Closer; only the first call releases the body.
func (c *copyBody) Close() error {
	if !c.closed.Swap(true) {
		c.shared.release()
	}
	return nil
}

// bufPool holds the buffers that request bodies are copied into.
var bufPool = sync.Pool{
	New: func() any { return new(bytes.Buffer) },
}
