package main

import (
	"context"
	"io"
	"sync"
	"time"
)

// The loads of scenario 13 that the open and closed loops do not make:
// bursts, requests spaced out, uploads one after another, slow uploads.

// bursts sends n bursts of size concurrent requests, each burst once the
// last has been answered, and calls onBurst as each begins. A request
// still unanswered drainTimeout after its burst began is cut off and
// counted as cancelled.
func bursts(q *requester, n, size int, onBurst func(i int)) load {
	t := newTally()
	start := time.Now()
	for i := range n {
		if onBurst != nil {
			onBurst(i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		var wg sync.WaitGroup
		for range size {
			wg.Go(func() {
				t0 := time.Now()
				t.add(q.do(ctx), time.Since(t0))
			})
		}
		wg.Wait()
		cancel()
	}
	return t.result(start)
}

// spaced starts n requests every apart (every 0: all at once), each on
// its own connection, and waits for them; one still unanswered timeout
// after it began is cut off.
func spaced(q *requester, n int, every, timeout time.Duration) load {
	t := newTally()
	start := time.Now()
	var wg sync.WaitGroup
	var tick <-chan time.Time
	if every > 0 {
		ticker := time.NewTicker(every) // pacing the requests, not synchronising
		defer ticker.Stop()
		tick = ticker.C
	}
	for i := range n {
		if i > 0 && tick != nil {
			<-tick
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			t0 := time.Now()
			t.add(q.do(ctx), time.Since(t0))
		})
	}
	wg.Wait()
	return t.result(start)
}

// sequential sends n requests one after another; one still unanswered
// timeout after it began is cut off.
func sequential(q *requester, n int, timeout time.Duration) load {
	t := newTally()
	start := time.Now()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		t0 := time.Now()
		t.add(q.do(ctx), time.Since(t0))
		cancel()
	}
	return t.result(start)
}

// tricklingBody is a request body of n bytes sent one at a time, every
// apart: a client uploading slowly.
type tricklingBody struct {
	n, sent int
	every   time.Duration
}

func (b *tricklingBody) Read(p []byte) (int, error) {
	if b.sent == b.n {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.sent > 0 {
		time.Sleep(b.every) // pacing a client, not synchronising
	}
	p[0] = 's'
	b.sent++
	return 1, nil
}

// slowUploads runs uploaders clients at once, each uploading n bytes one
// every apart, with q's headers, and returns their load.
func slowUploads(q *requester, uploaders, n int, every, timeout time.Duration) load {
	t := newTally()
	start := time.Now()
	var wg sync.WaitGroup
	for range uploaders {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			t0 := time.Now()
			t.add(q.doBody(ctx, &tricklingBody{n: n, every: every}, int64(n)), time.Since(t0))
		})
	}
	wg.Wait()
	return t.result(start)
}

// mergeLoads adds b's counts and latencies to a's.
func mergeLoads(a, b load) load {
	out := a
	out.sent += b.sent
	out.completed += b.completed
	out.errors += b.errors
	out.cancelled += b.cancelled
	if out.firstError == "" {
		out.firstError = b.firstError
	}
	out.elapsed = max(a.elapsed, b.elapsed)
	out.latency = newLatencyHistogram()
	out.latency.Merge(a.latency)
	out.latency.Merge(b.latency)
	return out
}
