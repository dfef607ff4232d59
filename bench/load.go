package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// load is what a load phase measured from the client's side.
type load struct {
	sent, completed, errors int
	// cancelled is how many requests the load generator cut off itself:
	// still unanswered drainTimeout after the phase ended. They are neither
	// errors nor results.
	cancelled  int
	firstError string // what went wrong with the first error, for the report
	elapsed    time.Duration
	latency    *hdrhistogram.Histogram // microseconds
	// windows, of an open loop, holds for each latencyWindow from its
	// start the longest latency of the requests due in it: where in the
	// phase the tail falls, at the start (a limit's ramp) or all along
	// (a garbage collector's cycles).
	windows []time.Duration
}

// latencyWindow is the width of an open loop's windows.
const latencyWindow = 100 * time.Millisecond

// slowestWindows returns the n windows with the longest latencies,
// slowest first, as "at s: ms" items.
func (l load) slowestWindows(n int) string {
	order := make([]int, len(l.windows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(l.windows[b], l.windows[a]) })
	var items []string
	for _, i := range order[:min(n, len(order))] {
		items = append(items, fmt.Sprintf("%.1f s: %.1f ms", (time.Duration(i)*latencyWindow).Seconds(), float64(l.windows[i])/1e6))
	}
	return strings.Join(items, ", ")
}

// drainTimeout is how long a phase lets the requests in flight at its end
// finish. Cutting one off would be the load generator's own doing, and the
// proxy would answer it with an error (a 502 for an upload cut short); one
// still unanswered after it is counted as cancelled, not as an error.
const drainTimeout = 20 * time.Second

// errCancelledByLoad marks a request the load generator cut off itself.
var errCancelledByLoad = errors.New("cancelled by the load generator")

// rps is the completed requests per second.
func (l load) rps() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.completed) / l.elapsed.Seconds()
}

// quantileMs is a latency quantile (0-100) in milliseconds.
func (l load) quantileMs(q float64) float64 {
	return float64(l.latency.ValueAtQuantile(q)) / 1000
}

// firstErrorNote is the first error in parentheses, or "" when none.
func (l load) firstErrorNote() string {
	if l.firstError == "" {
		return ""
	}
	return " (the first: " + l.firstError + ")"
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
	want   []byte      // the primary's body
	header http.Header // sent with every request; nil for none
}

// newRequester returns a requester of url over at most conns keep-alive
// connections.
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

// do sends one request under ctx and returns nil when the answer is the
// primary's: a 200 with the primary's body. Otherwise it returns what went
// wrong: an error status, another body, or a failed connection. A request
// that fails once ctx has ended was cut off by the load generator itself,
// and its error wraps errCancelledByLoad.
func (q *requester) do(ctx context.Context) error {
	if q.body == nil {
		return q.doBody(ctx, nil, 0)
	}
	return q.doBody(ctx, bytes.NewReader(q.body), int64(len(q.body)))
}

// doBody is do with a body of its own, of the given length.
func (q *requester) doBody(ctx context.Context, body io.Reader, length int64) error {
	req, err := http.NewRequestWithContext(ctx, q.method, q.url, body)
	if err != nil {
		return err
	}
	req.ContentLength = length
	for name, values := range q.header {
		req.Header[name] = values
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return q.failed(ctx, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return q.failed(ctx, fmt.Errorf("reading the body of a %q: %w", resp.Status, err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %q, body %q", q.method, q.url, resp.Status, excerpt(got))
	}
	if !bytes.Equal(got, q.want) {
		return fmt.Errorf("%s %s: a body other than the primary's: %q", q.method, q.url, excerpt(got))
	}
	return nil
}

// failed is the error of a request whose connection failed: the load
// generator's own cancellation when ctx has ended, the proxy's fault
// otherwise.
func (q *requester) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", errCancelledByLoad, err)
	}
	return fmt.Errorf("%s %s: %w", q.method, q.url, err)
}

// close drops the idle connections.
func (q *requester) close() {
	q.client.CloseIdleConnections()
}

// tally adds up the results of requests that many workers send.
type tally struct {
	mu sync.Mutex
	load
}

// newTally returns an empty tally.
func newTally() *tally {
	return &tally{load: load{latency: newLatencyHistogram()}}
}

// add counts a request sent, its error from do and its latency, and
// reports whether the load generator cut it off.
func (t *tally) add(err error, lat time.Duration) (cancelled bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent++
	if errors.Is(err, errCancelledByLoad) {
		t.cancelled++
		return true
	}
	if err != nil {
		t.errors++
		if t.firstError == "" {
			t.firstError = err.Error()
		}
	}
	t.completed++
	_ = t.latency.RecordValue(lat.Microseconds())
	return false
}

// addWindow records a latency of a request due at offset from the start.
func (t *tally) addWindow(offset, lat time.Duration) {
	i := int(offset / latencyWindow)
	t.mu.Lock()
	defer t.mu.Unlock()
	if i >= len(t.windows) {
		t.windows = append(t.windows, make([]time.Duration, i+1-len(t.windows))...)
	}
	t.windows[i] = max(t.windows[i], lat)
}

// result returns the tally's load, elapsed since start.
func (t *tally) result(start time.Time) load {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := t.load
	res.elapsed = time.Since(start)
	return res
}

// warmUp sends requests for d as the phase will: an open loop at rate, or
// a closed loop. An open loop's warm-up is not a closed one, which would
// send twice the phase's rate or more: the mirror's limit would learn,
// and its connections to the shadow be opened, for a load that the phase
// does not bring.
func warmUp(q *requester, open bool, rate float64, conns int, d time.Duration) {
	if open {
		openLoop(q, rate, conns, d, 0, nil)
		return
	}
	closedLoop(q, conns, d)
}

// closedLoop runs conns workers that each send requests back to back for
// d, then lets the requests in flight finish, for up to drainTimeout. It
// measures peak throughput; its latencies are those of a saturated server.
func closedLoop(q *requester, conns int, d time.Duration) load {
	phase, endPhase := context.WithTimeout(context.Background(), d)
	defer endPhase()
	requests, cutOff := context.WithTimeout(context.Background(), d+drainTimeout)
	defer cutOff()
	t := newTally()
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for phase.Err() == nil {
				t0 := time.Now()
				if t.add(q.do(requests), time.Since(t0)) {
					return
				}
			}
		})
	}
	wg.Wait()
	return t.result(start)
}

// openLoop sends requests at a fixed rate for d over conns connections,
// whatever the server does, and measures each latency from the moment the
// request was due, not from when it could be sent (as wrk2 does), so that a
// stall shows up in the percentiles instead of hiding in fewer samples
// (coordinated omission). No request is sent after d+grace; those in
// flight then may finish for up to drainTimeout, and those never sent are
// recorded with the time they had waited by d+grace, a lower bound.
// onResult, when not nil, is also given each completed request's due time
// and latency.
func openLoop(q *requester, rate float64, conns int, d, grace time.Duration, onResult func(due time.Time, lat time.Duration)) load {
	return openLoopAt(q, evenSchedule(rate, d), conns, d, grace, onResult)
}

// openLoopAt is openLoop with the requests due at the offsets of schedule
// (ascending, all before d) from the start.
func openLoopAt(q *requester, schedule []time.Duration, conns int, d, grace time.Duration, onResult func(due time.Time, lat time.Duration)) load {
	n := len(schedule)
	due := make(chan time.Time, n)
	sending, stopSending := context.WithTimeout(context.Background(), d+grace)
	defer stopSending()
	requests, cutOff := context.WithTimeout(context.Background(), d+grace+drainTimeout)
	defer cutOff()

	t := newTally()
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for at := range due {
				if sending.Err() != nil {
					return
				}
				err := q.do(requests)
				lat := time.Since(at)
				if t.add(err, lat) {
					return
				}
				t.addWindow(at.Sub(start), lat)
				if onResult != nil {
					onResult(at, lat)
				}
			}
		})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for _, offset := range schedule {
		at := start.Add(offset)
		timer.Reset(time.Until(at))
		select {
		case <-timer.C:
		case <-sending.Done():
		}
		due <- at
	}
	close(due)
	wg.Wait()
	res := t.result(start)
	res.sent = n
	end := start.Add(d + grace)
	for at := range due { // never sent: the server fell too far behind
		_ = res.latency.RecordValue(end.Sub(at).Microseconds())
	}
	return res
}
