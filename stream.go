package mirror

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// streamBody is the request body of one streamed copy: the body's buffered
// prefix, shared with the request's other copies, then the rest as the
// primary reads it. What the primary has read and the copy's transport has
// not yet taken waits in a queue of pooled blocks, at most the window's
// worth (a shadow that keeps up holds a block or two, and a block goes back
// to the pool as soon as it has been taken, so a lagging copy makes no
// garbage). A copy whose shadow falls
// further behind than the window is cut off: its body reads fail, its
// context is cancelled (which closes its connection), and the primary never
// waits for it.
//
// The primary's side (write, finish, cutOff) and the transport's side (Read,
// Close) run in different goroutines; every state change is locked.
type streamBody struct {
	length int64 // the copy's Content-Length, -1 when unknown

	mu     sync.Mutex
	cond   sync.Cond
	prefix *sharedBody // nil once read or released
	off    int         // how much of the prefix has been read
	blocks []*[]byte   // the bytes not yet taken, from head in the first block
	head   int         // where the next byte to read is in the first block
	size   int         // how many bytes the blocks hold
	window int         // the most the blocks may hold
	eof    bool        // the primary read the body to its end
	closed bool        // the transport closed the body, or send stopped it
	cut    outcome     // why the copy was cut off; 0 (mirrored) if it was not

	cancel  context.CancelCauseFunc // the copy's context; nil until attached
	timeout time.Duration
	timer   *time.Timer // the copy's timeout, started once the body is complete
}

// errCutOff is what a copy's transport reads once the copy is cut off.
var errCutOff = errors.New("mirror copy cut off")

// newStreamBody starts a streamed copy whose body begins with prefix (of
// which it holds one reference) and which holds at most window bytes that
// its transport has not taken.
func newStreamBody(prefix *sharedBody, window int, length int64) *streamBody {
	s := &streamBody{length: length, prefix: prefix, window: window}
	s.cond.L = &s.mu
	return s
}

// Read implements io.Reader for the copy's transport. It waits for the
// primary to read more of the body, and fails once the copy is cut off.
func (s *streamBody) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.cut != mirrored || s.closed:
			return 0, errCutOff
		case s.prefix != nil:
			rest := s.prefix.buf.Bytes()[s.off:]
			n := copy(p, rest)
			s.off += n
			if n == len(rest) {
				s.prefix.release() // this copy is done with it
				s.prefix = nil
			}
			return n, nil
		case s.size > 0:
			n := 0
			for n < len(p) && s.size > 0 {
				first := *s.blocks[0]
				k := copy(p[n:], first[s.head:min(len(first), s.head+s.size)])
				n, s.head, s.size = n+k, s.head+k, s.size-k
				if s.head == len(first) || s.size == 0 {
					s.dropFirstLocked()
				}
			}
			return n, nil
		case s.eof:
			return 0, io.EOF
		}
		s.cond.Wait()
	}
}

// Close implements io.Closer. The transport closes the body when it has
// sent it or has given up; either way the copy takes no more bytes.
func (s *streamBody) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.releaseLocked()
	return nil
}

// write hands the copy the next bytes the primary read. It never waits
// for the copy's transport: when the bytes do not fit in the window the
// copy is cut off. It reports whether the copy still takes bytes.
func (s *streamBody) write(p []byte) bool {
	s.mu.Lock()
	if s.cut != mirrored || s.closed {
		s.mu.Unlock()
		return false
	}
	if s.size+len(p) > s.window {
		cancel := s.cutLocked(cutOffSlow)
		s.mu.Unlock()
		cancel()
		return false
	}
	for len(p) > 0 {
		// the last block's free space starts where the bytes end
		used := (s.head + s.size) % blockSize
		if used == 0 && (s.size > 0 || len(s.blocks) == 0) {
			s.blocks = append(s.blocks, blockPool.Get().(*[]byte))
		}
		last := *s.blocks[len(s.blocks)-1]
		n := copy(last[used:], p)
		p, s.size = p[n:], s.size+n
	}
	s.cond.Signal()
	s.mu.Unlock()
	return true
}

// dropFirstLocked gives the first block back to the pool once it has been
// read, or once the copy holds nothing more.
func (s *streamBody) dropFirstLocked() {
	blockPool.Put(s.blocks[0])
	s.blocks[0] = nil
	s.blocks = s.blocks[1:]
	s.head = 0
}

// blockSize is the size of the blocks that streamed copies hold their
// bytes in.
const blockSize = 64 << 10

// blockPool holds the blocks of streamed copies.
var blockPool = sync.Pool{New: func() any {
	b := make([]byte, blockSize)
	return &b
}}

// finish tells the copy that the body is complete: its transport reads
// io.EOF after the last byte, and its timeout starts.
func (s *streamBody) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut != mirrored || s.closed {
		return
	}
	s.eof = true
	s.cond.Broadcast()
	s.startTimerLocked()
}

// cutOff ends the copy early for reason, unless it has already ended.
func (s *streamBody) cutOff(reason outcome) {
	s.mu.Lock()
	if s.cut != mirrored || s.closed {
		s.mu.Unlock()
		return
	}
	cancel := s.cutLocked(reason)
	s.mu.Unlock()
	cancel()
}

// cutLocked marks the copy cut off and wakes its reader. It returns the
// function that cancels the copy's context, to be called unlocked.
func (s *streamBody) cutLocked(reason outcome) func() {
	s.cut = reason
	s.releaseLocked()
	cancel := s.cancel
	return func() {
		if cancel != nil {
			cancel(errCutOff)
		}
	}
}

// releaseLocked gives back the prefix and the window, and wakes the reader.
func (s *streamBody) releaseLocked() {
	if s.prefix != nil {
		s.prefix.release()
		s.prefix = nil
	}
	for _, b := range s.blocks {
		blockPool.Put(b)
	}
	s.blocks, s.head, s.size = nil, 0, 0
	s.cond.Broadcast()
}

// context returns the copy's context, a child of parent. The copy's timeout
// counts from the moment the body is complete, since until then the copy
// goes at the client's pace; a copy that is cut off is cancelled at once.
func (s *streamBody) context(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	s.mu.Lock()
	s.cancel, s.timeout = cancel, timeout
	if s.eof {
		s.startTimerLocked()
	}
	cut := s.cut != mirrored
	s.mu.Unlock()
	if cut {
		cancel(errCutOff)
	}
	return ctx, func() { cancel(context.Canceled) }
}

func (s *streamBody) startTimerLocked() {
	if s.cancel != nil && s.timer == nil {
		cancel := s.cancel
		s.timer = time.AfterFunc(s.timeout, func() { cancel(context.DeadlineExceeded) })
	}
}

// stop ends the copy once its exchange is over, and reports why it was
// cut off, if it was. A body not yet complete is abandoned: the shadow
// answered before it had read all of it.
func (s *streamBody) stop() (reason outcome, cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.releaseLocked()
	if s.timer != nil {
		s.timer.Stop()
	}
	return s.cut, s.cut != mirrored
}

// saysNothingOfHealth reports whether a copy that ended with o tells
// nothing about its shadow's health, so that the circuit breaker ignores
// it: its body was cut short on the client's side, or the shadow took it
// more slowly than the client sent it, or the concurrency limit cancelled
// it for being late (the limit's business, not the breaker's). A shadow
// that lags behind a fast upload is alive; the breaker is for dead, hung
// and resetting shadows, and opening it would drop the shadow's small
// copies too.
func (o outcome) saysNothingOfHealth() bool {
	return o == cutOffIncomplete || o == cutOffTooLarge || o == cutOffSlow || o == cancelledLate
}
