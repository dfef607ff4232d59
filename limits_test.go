package mirror

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mirror/mirror/compare"
)

// holdingShadow is a shadow that reads each copy's body, reports it, and
// answers only when release is closed or the copy is cancelled.
func holdingShadow(t *testing.T) (srv *httptest.Server, got <-chan struct{}, release chan struct{}) {
	ch := make(chan struct{}, 64)
	release = make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		ch <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	return srv, ch, release
}

// post sends a small POST to url and checks that the primary answered.
func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || string(body) != sha256hex([]byte("payload")) {
		t.Fatalf("client got %d %q, want the primary's answer", resp.StatusCode, body)
	}
}

func TestMaxInFlight(t *testing.T) {
	rec := recordOutcomes(t)
	shadow, got, release := holdingShadow(t)
	defer shadow.Close()
	defer close(release)
	// fixed: a held copy is never cancelled for being late, however slow the machine
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"concurrency":{"fixed":true}}],"max_in_flight":2}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)
	tg := h.Targets[0]

	post(t, front.URL)
	post(t, front.URL)
	receive(t, got, "the first copy")
	receive(t, got, "the second copy")
	if n := testutil.ToFloat64(tg.inFlight); n != 2 {
		t.Errorf("in_flight gauge = %v, want 2", n)
	}
	for range 3 {
		post(t, front.URL) // the primary answers though no slot is free
	}
	for _, o := range rec.wait(t, 3) {
		if o.outcome != droppedInFlight {
			t.Errorf("outcome with both slots held = %v, want dropped_in_flight", o.outcome)
		}
	}
	if n := testutil.ToFloat64(tg.counters[droppedInFlight]); n != 3 {
		t.Errorf("dropped_in_flight counter = %v, want 3", n)
	}

	release <- struct{}{}
	release <- struct{}{}
	for _, o := range rec.wait(t, 2) {
		if o.outcome != mirrored {
			t.Errorf("outcome of a held copy = %v, want mirrored", o.outcome)
		}
	}
	if n := testutil.ToFloat64(tg.inFlight); n != 0 {
		t.Errorf("in_flight gauge after = %v, want 0", n)
	}
	post(t, front.URL) // a slot is free again
	receive(t, got, "a copy after the slots were freed")
}

func TestMaxRate(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	setClock(func() time.Time { return clock })
	t.Cleanup(func() { setClock(time.Now) })
	rec := recordOutcomes(t)
	shadow := newChecksumShadow(t)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"max_rate":2}]}`, shadow.URL))
	front := serveThrough(t, h, checksumPrimary)

	for range 5 {
		post(t, front.URL)
	}
	got := counts(rec.wait(t, 5))
	if got["mirrored"] != 2 || got["dropped_rate"] != 3 {
		t.Errorf("outcomes of 5 requests in one instant at max_rate 2 = %v, want 2 mirrored, 3 dropped_rate", got)
	}
}

func TestCleanupCancelsCopiesAndLeavesNoGoroutines(t *testing.T) {
	for _, cfg := range []*compare.Config{nil, {NoiseFrom: "noise"}} {
		t.Run(fmt.Sprintf("compared %v", cfg != nil), func(t *testing.T) {
			testCleanupCancelsCopies(t, cfg)
		})
	}
}

func testCleanupCancelsCopies(t *testing.T, cfg *compare.Config) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rec := recordOutcomes(t)
	shadow, got, release := holdingShadow(t) // never released
	defer close(release)
	defer shadow.Close()

	h := new(Handler)
	// fixed limits: the held copies are never cancelled for being late,
	// however long a slow machine takes to reach Cleanup
	fixed := &Concurrency{Fixed: true}
	h.Targets = []*Target{{Upstream: shadow.URL, Timeout: caddy.Duration(time.Hour), Compare: cfg, Concurrency: fixed}}
	if cfg != nil {
		// its noise target holds its copies too
		h.Targets = append(h.Targets, &Target{Name: "noise", Upstream: shadow.URL, Timeout: caddy.Duration(time.Hour), Percent: new(float64), Concurrency: fixed})
	}
	copiesPerRequest := len(h.Targets)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, withCaddyContext(w, r), checksumPrimary)
	}))
	client := &http.Client{Transport: &http.Transport{}}
	for range 3 {
		resp, err := client.Post(front.URL, "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for range copiesPerRequest {
			receive(t, got, "a copy at the shadow")
		}
	}
	client.CloseIdleConnections()
	front.Close()

	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	for _, o := range rec.wait(t, 3*copiesPerRequest) {
		if o.outcome != failed {
			t.Errorf("outcome of a copy cancelled by Cleanup = %v, want failed", o.outcome)
		}
	}
	if n := h.inFlight.Load(); n != 0 {
		t.Errorf("in-flight slots after Cleanup = %d, want 0", n)
	}

	// copies that would start after Cleanup are cancelled at once
	r := withCaddyContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if err := h.ServeHTTP(httptest.NewRecorder(), r, checksumPrimary); err != nil {
		t.Fatal(err)
	}
	for _, o := range rec.wait(t, copiesPerRequest) {
		if o.outcome != failed {
			t.Errorf("outcome of a copy after Cleanup = %v, want failed", o.outcome)
		}
	}
	cancel() // unloads the transport, closing its idle connections
}

func TestCleanupBeforeProvision(t *testing.T) {
	if err := new(Handler).Cleanup(); err != nil {
		t.Errorf("Cleanup of an unprovisioned handler = %v, want nil", err)
	}
	h := &Handler{Targets: []*Target{{Upstream: "http://ok"}, {Upstream: "ftp://bad"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err == nil {
		t.Fatal("Provision with a bad upstream = nil error")
	}
	if err := h.Cleanup(); err != nil {
		t.Errorf("Cleanup of a half-provisioned handler = %v, want nil", err)
	}
}

// roundTripperFunc adapts a function to http.RoundTripper.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A transport module that does not watch the request's context, such as Go's
// for the connection of a 101 response, leaves a body whose reads only end
// when it is closed. Cleanup must still end the copy reading it.
func TestCleanupClosesBodiesThatIgnoreTheContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rec := recordOutcomes(t)
	h := new(Handler)
	h.Targets = []*Target{{Upstream: "http://127.0.0.1:1", Timeout: caddy.Duration(time.Hour)}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	responded := make(chan struct{})
	shadowEnd := make(chan net.Conn, 1)
	h.Targets[0].Transport = roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		body, far := net.Pipe() // nothing is ever written to far
		shadowEnd <- far
		close(responded)
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body}, nil
	})
	r := withCaddyContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if err := h.ServeHTTP(httptest.NewRecorder(), r, checksumPrimary); err != nil {
		t.Fatal(err)
	}
	receive(t, responded, "the shadow's response")
	far := <-shadowEnd
	defer far.Close()

	cleaned := make(chan error)
	go func() { cleaned <- h.Cleanup() }()
	if err := receive(t, cleaned, "Cleanup to return"); err != nil {
		t.Fatal(err)
	}
	if o := rec.wait(t, 1)[0]; o.outcome != mirrored {
		t.Errorf("outcome = %v, want mirrored: the shadow answered before the body was cut off", o.outcome)
	}
	// the body was closed: the shadow's end of it sees the hang-up
	if _, err := far.Read(make([]byte, 1)); err == nil {
		t.Error("the body's connection is still open after Cleanup")
	}
}
