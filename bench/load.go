package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// load is what a load phase measured from the client's side.
type load struct {
	sent, completed, errors int
	elapsed                 time.Duration
	latency                 *hdrhistogram.Histogram // microseconds
}

// rps is the completed requests per second.
func (l load) rps() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.completed) / l.elapsed.Seconds()
}

// newLatencyHistogram records from 1µs to 10 min with 3 significant digits.
func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// requester sends one request and reports whether the answer was the
// primary's.
type requester struct {
	client *http.Client
	url    string
	method string
	body   []byte
	want   []byte // the primary's body
}

func newRequester(url string, conns int, method string, body, want []byte) *requester {
	return &requester{
		client: &http.Client{Transport: &http.Transport{
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		}},
		url: url, method: method, body: body, want: want,
	}
}

// do sends one request; ok is false on a transport error, a status other
// than 200 or a body other than the primary's. canceled reports a request
// cut off by the end of the phase, which is neither an error nor a result.
func (q *requester) do(ctx context.Context) (ok, canceled bool) {
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, q.url, body)
	if err != nil {
		return false, false
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return false, ctx.Err() != nil
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, ctx.Err() != nil
	}
	return resp.StatusCode == http.StatusOK && bytes.Equal(got, q.want), false
}

func (q *requester) close() {
	q.client.CloseIdleConnections()
}

// closedLoop runs conns workers that each send requests back to back for d.
// It measures peak throughput; its latencies are those of a saturated server.
func closedLoop(q *requester, conns int, d time.Duration) load {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	res := load{latency: newLatencyHistogram()}
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, canceled := q.do(ctx)
				if canceled {
					return
				}
				lat := time.Since(t0)
				mu.Lock()
				res.sent++
				res.completed++
				if !ok {
					res.errors++
				}
				_ = res.latency.RecordValue(lat.Microseconds())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// openLoop sends requests at a fixed rate for d over conns connections,
// whatever the server does, and measures each latency from the moment the
// request was due, not from when it could be sent (as wrk2 does), so that a
// stall shows up in the percentiles instead of hiding in fewer samples
// (coordinated omission). Requests still unsent at d+grace are recorded
// with the time they had waited by then, a lower bound. onResult, when not
// nil, is also given each completed request's due time and latency.
func openLoop(q *requester, rate float64, conns int, d, grace time.Duration, onResult func(due time.Time, lat time.Duration)) load {
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	due := make(chan time.Time, n)
	ctx, cancel := context.WithTimeout(context.Background(), d+grace)
	defer cancel()

	var mu sync.Mutex
	res := load{latency: newLatencyHistogram()}
	record := func(lat time.Duration, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		res.completed++
		if !ok {
			res.errors++
		}
		_ = res.latency.RecordValue(lat.Microseconds())
	}

	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for at := range due {
				if ctx.Err() != nil {
					return
				}
				ok, canceled := q.do(ctx)
				if canceled {
					return
				}
				lat := time.Since(at)
				record(lat, ok)
				if onResult != nil {
					onResult(at, lat)
				}
			}
		})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		timer.Reset(time.Until(at))
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		due <- at
	}
	res.sent = n
	close(due)
	wg.Wait()
	res.elapsed = time.Since(start)
	end := time.Now()
	for at := range due { // never sent: the server fell too far behind
		_ = res.latency.RecordValue(end.Sub(at).Microseconds())
	}
	return res
}
