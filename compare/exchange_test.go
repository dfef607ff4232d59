package compare

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

// TestExchangeReleasesBuffersOnce runs many compared exchanges whose
// primary, noise and candidate responses finish in every order, each side
// in its own goroutine as in the mirror, and checks that each exchange's
// buffers go back to the pool exactly once, after every side is done, and
// that every exchange was compared.
func TestExchangeReleasesBuffersOnce(t *testing.T) {
	const exchanges = 200
	var mu sync.Mutex
	released := make(map[*Exchange]int)
	hook := func(ex *Exchange) {
		mu.Lock()
		defer mu.Unlock()
		released[ex]++
		for _, s := range append([]*Response{ex.primary}, ex.shadows...) {
			select {
			case <-s.done:
			default:
				t.Errorf("exchange released before a side finished")
			}
		}
	}
	onExchangeReleased.Store(&hook)
	t.Cleanup(func() { onExchangeReleased.Store(nil) })
	cmp, err := NewComparer(&Config{NoiseFrom: "release-noise"}, "release-candidate", "http://c", nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer cmp.Close()

	// jitter varies which side finishes last, without sleeping
	jitter := func(n int) {
		for range n % 7 * 50 {
			runtime.Gosched()
		}
	}
	shadowResponse := func(path, v string) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(fmt.Sprintf(`{"path":%q,"v":%q}`, path, v)))}
	}
	var wg sync.WaitGroup
	for i := range exchanges {
		path := "/" + strings.Repeat("x", i%13)
		ex := NewExchange(httptest.NewRequest(http.MethodGet, path, nil), 1<<20)
		noise, candidate := ex.AddResponse(1<<20), ex.AddResponse(1<<20)
		ex.Start()
		wg.Go(func() { // the primary's side, as the route writes it
			jitter(i)
			w := ex.CaptureWriter(httptest.NewRecorder())
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"path":%q,"v":"1"}`, path)
			ex.FinishPrimary(false)
		})
		wg.Go(func() { // the noise copy
			jitter(i + 3)
			noise.ReadFrom(shadowResponse(path, "1"))
			noise.Finish()
			ex.Release()
		})
		wg.Go(func() { // the candidate, which compares
			jitter(i + 5)
			candidate.ReadFrom(shadowResponse(path, "2"))
			candidate.Finish()
			cmp.Compare(context.Background(), ex, candidate, noise, func() bool { return false })
			ex.Release()
		})
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(released) != exchanges {
		t.Errorf("%d exchanges released, want %d", len(released), exchanges)
	}
	for _, n := range released {
		if n != 1 {
			t.Errorf("an exchange was released %d times, want once", n)
		}
	}
	r := cmp.report.snapshot("release-candidate")
	if r.Compared != exchanges || r.WithNoise != exchanges || r.Counts["mismatch"] != exchanges {
		t.Errorf("report: %d compared, %d with noise, counts %v; want %d each, all mismatches on /v",
			r.Compared, r.WithNoise, r.Counts, exchanges)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                true,
		"Application/JSON; charset=utf-8": true,
		"application/problem+json":        true,
		"text/json":                       false,
		"text/html":                       false,
		"":                                false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}
