package mirror

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestConnectionStorm: 1,000 clients, each on its own connection, send
// requests at once while the shadow holds every copy it gets (a shadow
// slower than the whole storm). Every client gets the primary's answer,
// and the sockets open to the shadow never exceed max_in_flight.
func TestConnectionStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	const (
		clients     = 1000
		perClient   = 3
		maxInFlight = 256
	)
	// each client connection takes a descriptor at both ends, and each
	// copy's connection two more; Go raises the soft limit to the hard one
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err == nil && limit.Cur < 2*clients+2*maxInFlight+512 {
		t.Skipf("the open-files limit is %d; this test needs about %d", limit.Cur, 2*clients+2*maxInFlight+512)
	}
	var (
		mu                sync.Mutex
		open, maxOpen     int
		release           = make(chan struct{})
		releaseOnce       sync.Once
		shadowConnections = func(_ net.Conn, state http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			switch state {
			case http.StateNew:
				open++
				maxOpen = max(maxOpen, open)
			case http.StateClosed, http.StateHijacked:
				open--
			}
		}
	)
	shadow := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	shadow.Config.ConnState = shadowConnections
	shadow.Start()
	defer shadow.Close()
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()

	rec := recordOutcomes(t)
	// the target's limit fixed at max_in_flight, so that max_in_flight
	// itself is what bounds the storm (the adaptive limit's own bound is
	// in concurrency_test.go)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"upstream":%q,"timeout":"1m","concurrency":{"fixed":true}}],"max_in_flight":%d}`, shadow.URL, maxInFlight))
	front := serveThrough(t, h, checksumPrimary)

	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for i := range clients {
		wg.Go(func() {
			// a client of its own: its own connection, kept alive
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for j := range perClient {
				payload := fmt.Sprintf("client %d request %d", i, j)
				resp, err := client.Post(front.URL, "text/plain", strings.NewReader(payload))
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted || string(body) != sha256hex([]byte(payload)) {
					errs <- fmt.Errorf("client %d got %d %q", i, resp.StatusCode, body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if failures++; failures <= 3 {
			t.Error(err)
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d requests failed", failures, clients*perClient)
	}

	unblock()
	got := counts(rec.wait(t, clients*perClient))
	mu.Lock()
	peak := maxOpen
	mu.Unlock()
	t.Logf("%d requests on %d connections: outcomes %v; at most %d sockets open to the shadow", clients*perClient, clients, got, peak)
	if peak > maxInFlight {
		t.Errorf("%d sockets were open to the shadow at once, want at most max_in_flight = %d", peak, maxInFlight)
	}
	if got["mirrored"] != maxInFlight || got["dropped_in_flight"] != clients*perClient-maxInFlight {
		t.Errorf("outcomes %v, want %d mirrored (the copies the shadow held) and the rest dropped_in_flight", got, maxInFlight)
	}
}
