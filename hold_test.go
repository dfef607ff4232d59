package mirror

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// With wait_for_primary, a copy that is complete waits for the primary's
// response (hold.go); by default it does not.

// copyArrivals starts a shadow that sends, for each request it gets,
// whether answered was set by then.
func copyArrivals(t *testing.T, answered *atomic.Bool) (*httptest.Server, <-chan bool) {
	t.Helper()
	arrived := make(chan bool, 16)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- answered.Load()
	}))
	t.Cleanup(shadow.Close)
	return shadow, arrived
}

// TestCopyGoesAfterThePrimary: with a wait longer than the test, a GET's
// copy and a POST's (its body complete) still reach the shadow: the
// route's return released them, after the primary had answered.
// (TestCopyWaitsForThePrimaryAtMost shows that a copy is held at all.)
func TestCopyGoesAfterThePrimary(t *testing.T) {
	var answered atomic.Bool
	shadow, arrived := copyArrivals(t, &answered)
	h := provisionHandler(t, `{"wait_for_primary":"1h","targets":[{"upstream":"`+shadow.URL+`"}]}`)
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		_, err := io.WriteString(w, "primary")
		answered.Store(true)
		return err
	})
	front := serveThrough(t, h, primary)
	for _, send := range []func() (*http.Response, error){
		func() (*http.Response, error) { return http.Get(front.URL) },
		func() (*http.Response, error) { return http.Post(front.URL, "text/plain", strings.NewReader("a body")) },
	} {
		answered.Store(false)
		resp, err := send()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if after := receive(t, arrived, "the copy"); !after {
			t.Error("the copy reached the shadow while the primary was being served")
		}
	}
}

// TestCopyWaitsForThePrimaryAtMost: a primary still answering after
// wait_for_primary does not hold its copy back longer: the primary here
// answers only once the shadow has the copy, which went no sooner than
// the wait (timers never fire early).
func TestCopyWaitsForThePrimaryAtMost(t *testing.T) {
	const wait = 100 * time.Millisecond
	var answered atomic.Bool
	shadow, arrived := copyArrivals(t, &answered)
	h := provisionHandler(t, `{"wait_for_primary":"100ms","targets":[{"upstream":"`+shadow.URL+`"}]}`)
	var arrivedAt time.Time
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if after := receive(t, arrived, "the copy, during the primary"); after {
			t.Error("answered before the primary did")
		}
		arrivedAt = time.Now()
		_, err := io.WriteString(w, "primary")
		return err
	})
	front := serveThrough(t, h, primary)
	// the wait began after the request was sent: the copy came no sooner
	// than the wait after it
	sent := time.Now()
	get(t, front.URL)
	if waited := arrivedAt.Sub(sent); waited < wait {
		t.Errorf("the copy came %v after the request, before the wait of %v", waited, wait)
	}
}

// TestCopyWithoutWaitGoesAlongside: by default a copy is sent while the
// primary is still being served: this primary answers only once the
// shadow has the copy.
func TestCopyWithoutWaitGoesAlongside(t *testing.T) {
	var answered atomic.Bool
	shadow, arrived := copyArrivals(t, &answered)
	h := provisionHandler(t, `{"targets":[{"upstream":"`+shadow.URL+`"}]}`)
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		receive(t, arrived, "the copy, during the primary")
		_, err := io.WriteString(w, "primary")
		return err
	})
	get(t, serveThrough(t, h, primary).URL)
}

// get makes a GET request to url and reads the response to its end.
func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestHeldCopySurvivesUnload: a config unloading while a copy waits for
// its primary waits for it and sends it, as it lets a copy in flight
// finish: the copy is mirrored, not failed.
func TestHeldCopySurvivesUnload(t *testing.T) {
	var answered atomic.Bool
	shadow, arrived := copyArrivals(t, &answered)
	rec := recordOutcomes(t)
	h := provisionHandler(t, `{"wait_for_primary":"1h","targets":[{"upstream":"`+shadow.URL+`"}]}`)
	inPrimary, release := make(chan struct{}), make(chan struct{})
	primary := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		close(inPrimary)
		<-release
		answered.Store(true)
		_, err := io.WriteString(w, "primary")
		return err
	})
	front := serveThrough(t, h, primary)
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(front.URL)
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	receive(t, inPrimary, "the primary")
	unloaded := make(chan error, 1)
	go func() { unloaded <- h.Cleanup() }()
	// the unload has begun, no new copy may start, before the primary ends
	for guard := time.Now().Add(waitLimit); !h.unloadBegun(); runtime.Gosched() {
		if time.Now().After(guard) {
			t.Fatal("Cleanup did not begin")
		}
	}
	close(release)
	if err := receive(t, got, "the primary's response"); err != nil {
		t.Fatal(err)
	}
	if after := receive(t, arrived, "the copy"); !after {
		t.Error("the copy reached the shadow while the primary was being served")
	}
	if o := rec.wait(t, 1); o[0].outcome != mirrored {
		t.Errorf("outcome %v, want mirrored", o[0].outcome)
	}
	if err := receive(t, unloaded, "Cleanup"); err != nil {
		t.Error(err)
	}
}

// unloadBegun reports whether Cleanup has stopped new copies.
func (h *Handler) unloadBegun() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}
