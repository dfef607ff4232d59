package mirror

import (
	"context"
	"testing"
	"time"
)

// A hung shadow's copies are cancelled as late even when no other copy
// reaches the limit, as when the circuit breaker has opened: the limit's
// own timer notices them, on the real clock. Without it they stayed until
// their timeout (bench scenario 10: 24-40 of them for the whole 10 s).
func TestLateCopiesCancelledWithoutTraffic(t *testing.T) {
	l := newConcurrencyLimit(time.Now)
	l.afterFunc = time.AfterFunc
	l.configure(defaultFloor, 100, false, defaultMaxWait, nil, nil)
	const copies = initialLimit
	started := time.Now()
	held := make([]*heldCopy, 0, copies)
	contexts := make([]context.Context, 0, copies)
	for i := range copies {
		if _, ok := l.take(); !ok {
			t.Fatalf("copy %d of %d got no slot under a limit of %d", i+1, copies, initialLimit)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := l.start(ctx, cancel, false)
		c.wroteRequest()
		held, contexts = append(held, c), append(contexts, ctx)
	}
	deadline := time.After(30 * time.Second)
	late := 0
	for i, c := range held {
		select {
		case <-contexts[i].Done():
		case <-deadline:
			t.Fatalf("copy %d of %d was not cancelled within 30 s of its last sign of life, with no other copy taken or given back (lateAfter is %s)", i+1, copies, minLate)
		}
		if l.release(c) {
			late++
		}
	}
	if late != copies {
		t.Errorf("%d of %d copies were given back as cancelled late", late, copies)
	}
	if waited := time.Since(started); waited < minLate {
		t.Errorf("the copies were cancelled after %s, before they had been silent for %s", waited, minLate)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stalled {
		t.Error("the limit does not say that the shadow stopped answering")
	}
	if l.sending.Len() != 0 {
		t.Errorf("%d copies still sending after every one was given back", l.sending.Len())
	}
}
