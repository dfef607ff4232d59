package mirror

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
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
	prefix *sharedBody  // nil once read or released
	off    int          // how much of the prefix has been read
	blocks []*[]byte    // the bytes not yet taken, from head in the first block
	head   int          // where the next byte to read is in the first block
	size   int          // how many bytes the blocks hold
	window int          // the most the blocks may hold without borrowing
	slack  *streamSlack // where the excess over the window is borrowed from
	// how many bytes of size are borrowed from slack, and the timer that
	// looks, every streamGrace while the copy is over its window, at how
	// much it took of what the primary read meanwhile (nil while it is
	// within its window)
	borrowed    int
	behindTimer *time.Timer
	written     int64    // bytes the primary handed to the copy
	taken       int64    // bytes the copy's transport took of them
	checkedAt   [2]int64 // written and taken at the timer's last look
	eof         bool     // the primary read the body to its end
	closed      bool     // the transport closed the body, or send stopped it
	cut         outcome  // why the copy was cut off; 0 (mirrored) if it was not

	onTaken func() // called when the transport takes bytes; set before it reads

	cancel  context.CancelCauseFunc // the copy's context; nil until attached
	timeout time.Duration
	timer   *time.Timer // the copy's timeout, started once the body is complete
}

// errCutOff is what a copy's transport reads once the copy is cut off.
var errCutOff = errors.New("mirror copy cut off")

// newStreamBody starts a streamed copy whose body begins with prefix (of
// which it holds one reference) and which holds at most window bytes that
// its transport has not taken.
func newStreamBody(prefix *sharedBody, window int, slack *streamSlack, length int64) *streamBody {
	s := &streamBody{length: length, prefix: prefix, window: window, slack: slack}
	s.cond.L = &s.mu
	return s
}

// A stream's slack. When a scheduling hiccup, a garbage collection or a
// busy core stops a fast shadow's transport for a moment while the primary
// reads on (at 10 Gbit/s, a 4 MiB window is 3 ms), the copy may go on
// holding more than its window: it borrows the excess from the handler's
// stream_slack, a budget shared by all its streamed copies, for at most
// streamGrace. A copy is cut off (cut_off_slow) when it is still more than
// its window behind and took less than half of what the primary read during
// the last streamGrace (or nothing at all), or when the slack it needs is
// not there: slow is slow for a while, not behind for a moment, and the
// memory that lagging copies hold is bounded by the windows plus the
// slack.

// streamGrace is the longest a streamed copy may stay behind by more than
// its window.
const streamGrace = time.Second

// streamSlack is the shared budget of a handler's streamed copies.
type streamSlack struct{ left atomic.Int64 }

// borrow takes n bytes from the slack, and reports false when there are
// not that many left.
func (sl *streamSlack) borrow(n int) bool {
	if sl == nil {
		return false
	}
	if sl.left.Add(int64(-n)) < 0 {
		sl.left.Add(int64(n))
		return false
	}
	return true
}

// giveBack returns n borrowed bytes.
func (sl *streamSlack) giveBack(n int) {
	if sl != nil && n > 0 {
		sl.left.Add(int64(n))
	}
}

// Read implements io.Reader for the copy's transport. It waits for the
// primary to read more of the body, and fails once the copy is cut off.
func (s *streamBody) Read(p []byte) (int, error) {
	n, err := s.read(p)
	if n > 0 && s.onTaken != nil {
		s.onTaken()
	}
	return n, err
}

// read is Read without the notice.
func (s *streamBody) read(p []byte) (int, error) {
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
			s.taken += int64(n)
			s.caughtUpLocked()
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
	if !s.roomLocked(len(p)) {
		cancel := s.cutLocked(cutOffSlow)
		s.mu.Unlock()
		cancel()
		return false
	}
	s.written += int64(len(p))
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

// roomLocked reports whether n more bytes may be held: within the window,
// or over it with slack to borrow. While the copy is over its window, a
// timer looks every streamGrace at its pace (see keptPace).
func (s *streamBody) roomLocked(n int) bool {
	over := s.size + n - s.window
	if over <= 0 {
		return true
	}
	if need := over - s.borrowed; need > 0 {
		if !s.slack.borrow(need) {
			return false
		}
		s.borrowed += need
	}
	if s.behindTimer == nil {
		s.checkedAt = [2]int64{s.written, s.taken}
		s.behindTimer = time.AfterFunc(streamGrace, s.checkPace)
	}
	return true
}

// checkPace cuts the copy off if it is still over its window and did not
// keep pace since the last look, and otherwise looks again later.
func (s *streamBody) checkPace() {
	s.mu.Lock()
	if s.cut != mirrored || s.closed || s.behindTimer == nil || s.size <= s.window {
		s.mu.Unlock()
		return
	}
	if s.keptPaceLocked() {
		s.checkedAt = [2]int64{s.written, s.taken}
		s.behindTimer.Reset(streamGrace)
		s.mu.Unlock()
		return
	}
	cancel := s.cutLocked(cutOffSlow)
	s.mu.Unlock()
	cancel()
}

// keptPaceLocked reports whether, since the timer's last look, the copy's
// transport took at least half of what the primary read: a shadow that
// lags by a steady amount keeps pace, one that falls further behind, or
// takes nothing while the primary is done, does not.
func (s *streamBody) keptPaceLocked() bool {
	written, taken := s.written-s.checkedAt[0], s.taken-s.checkedAt[1]
	return taken > 0 && 2*taken >= written
}

// caughtUpLocked gives back the slack the copy no longer needs once its
// transport has taken bytes.
func (s *streamBody) caughtUpLocked() {
	over := max(s.size-s.window, 0)
	if s.borrowed > over {
		s.slack.giveBack(s.borrowed - over)
		s.borrowed = over
	}
	if over == 0 && s.behindTimer != nil {
		s.behindTimer.Stop()
		s.behindTimer = nil
	}
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
	s.slack.giveBack(s.borrowed)
	s.borrowed = 0
	if s.behindTimer != nil {
		s.behindTimer.Stop()
		s.behindTimer = nil
	}
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

// stop ends the copy once its round trip is over, and reports why it was
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
