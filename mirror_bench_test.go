package mirror

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// discardPrimary reads the body and answers, like a minimal reverse_proxy.
var discardPrimary = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
})

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{ header http.Header }

func (w nopWriter) Header() http.Header       { return w.header }
func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) WriteHeader(int)             {}

func TestNotCopiedRequestsDoNotAllocate(t *testing.T) {
	for _, tc := range []struct{ name, cfg string }{
		{"percent 0", `{"targets":[{"upstream":"http://127.0.0.1:1","percent":0}]}`},
		{"matcher that does not match", `{"targets":[{"upstream":"http://127.0.0.1:1","match":[{"header":{"X-Shadow":["yes"]}}]}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := provisionHandler(t, tc.cfg)
			w := nopWriter{header: http.Header{}}
			r := withCaddyContext(w, httptest.NewRequest(http.MethodGet, "/", nil))
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
			allocs := testing.AllocsPerRun(1000, func() {
				_ = h.ServeHTTP(w, r, next)
			})
			if allocs != 0 {
				t.Errorf("ServeHTTP(%s) allocates %v times per request, want 0", tc.name, allocs)
			}
		})
	}
}

func BenchmarkServeHTTP(b *testing.B) {
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer shadow.Close()
	body4k := bytes.Repeat([]byte("x"), 4<<10)

	for _, bc := range []struct {
		name string
		cfg  string // "" runs the primary alone
		body []byte
	}{
		{"passthrough/no mirror", "", nil},
		{"passthrough/not sampled", `{"targets":[{"upstream":%q,"percent":0}]}`, nil},
		{"passthrough/not matched", `{"targets":[{"upstream":%q,"match":[{"header":{"X-Shadow":["yes"]}}]}]}`, nil},
		{"mirrored/no body", `{"targets":[{"upstream":%q}],"max_in_flight":256}`, nil},
		{"mirrored/4KiB body", `{"targets":[{"upstream":%q}],"max_in_flight":256}`, body4k},
	} {
		b.Run(bc.name, func(b *testing.B) {
			serve := func(w http.ResponseWriter, r *http.Request) { _ = discardPrimary.ServeHTTP(w, r) }
			var h *Handler
			if bc.cfg != "" {
				h = provisionHandler(b, fmt.Sprintf(bc.cfg, shadow.URL))
				serve = func(w http.ResponseWriter, r *http.Request) {
					_ = h.ServeHTTP(w, r, discardPrimary)
					// Keep the copies within max_in_flight, so that every
					// copy is sent and its cost lands in this benchmark.
					for h.inFlight.Load() >= 64 {
						runtime.Gosched()
					}
				}
			}
			w := nopWriter{header: http.Header{}}
			method := http.MethodGet
			if bc.body != nil {
				method = http.MethodPost
			}
			r := withCaddyContext(w, httptest.NewRequest(method, "/reviews/1?x=1", nil))
			r.Header.Set("User-Agent", "bench")
			reader := bytes.NewReader(bc.body)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if bc.body != nil {
					reader.Reset(bc.body)
					r.Body = io.NopCloser(reader)
					r.ContentLength = int64(len(bc.body))
				}
				serve(w, r)
			}
			b.StopTimer()
			if h != nil {
				_ = h.Cleanup()
				tg := h.Targets[0]
				b.ReportMetric(testutil.ToFloat64(tg.counters[mirrored])/float64(b.N), "copies/op")
				b.ReportMetric(testutil.ToFloat64(tg.counters[droppedInFlight])/float64(b.N), "drops/op")
			}
		})
	}
}
