package mirror

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// switchingShadow is a shadow that is fast or hanging, as the test sets
// it, and counts the connections it is dialled and holds.
type switchingShadow struct {
	*httptest.Server
	hanging atomic.Bool
	hung    chan struct{} // one value per copy that it holds unanswered

	mu             sync.Mutex
	open, peakOpen int
	dialled        int
}

func newSwitchingShadow(t *testing.T) *switchingShadow {
	s := &switchingShadow{hung: make(chan struct{}, 1024)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the hang-up
		if s.hanging.Load() {
			s.hung <- struct{}{}
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "v2")
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch state {
		case http.StateNew:
			s.dialled++
			s.open++
			s.peakOpen = max(s.peakOpen, s.open)
		case http.StateClosed, http.StateHijacked:
			s.open--
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// sockets returns how many connections were dialled to s, and the most
// that were open at once.
func (s *switchingShadow) sockets() (dialled, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialled, s.peakOpen
}

// burst sends n requests to url from clients at once.
func burst(t *testing.T, url string, clients, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += clients {
				resp, err := http.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}

// byTarget tallies outcomes by target, then by outcome name.
func byTarget(outcomes []recordedOutcome) map[string]map[string]int {
	m := map[string]map[string]int{}
	for _, o := range outcomes {
		if m[o.target] == nil {
			m[o.target] = map[string]int{}
		}
		m[o.target][o.outcome.String()]++
	}
	return m
}

// TestConcurrencyLimitEndToEnd runs a shadow from fast to hanging and back,
// beside a healthy second target, on the package's fake clock (copies wait
// for a slot in real time, up to a max_wait of 50ms): the hanging shadow
// holds no more copies or sockets than the limit allows, collapses to the
// floor once its copies are late, the healthy target never loses a copy,
// a copy that waits for a slot gets one as soon as the late copies are
// cancelled, and every request has one outcome per target. The breaker
// is off (max_fails -1), to see the limit alone.
func TestConcurrencyLimitEndToEnd(t *testing.T) {
	clock := fakeClock(t)
	rec := recordOutcomes(t)
	a := newSwitchingShadow(t)
	b := newSwitchingShadow(t)
	// b's limit is fixed, at its share of max_in_flight, so that any copy
	// it loses is lost to a
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"name":"a","upstream":%q,"max_fails":-1,"concurrency":{"max_wait":"50ms"}},{"name":"b","upstream":%q,"concurrency":{"fixed":true}}]}`, a.URL, b.URL))
	front := serveThrough(t, h, checksumPrimary)
	ta := h.Targets[0]
	requests := 0
	// phase sends n requests from clients at once and waits for every
	// outcome but those of the copies that a still holds afterwards; b
	// must mirror them all
	phase := func(clients, n, newlyHeld, cancelled int) map[string]int {
		t.Helper()
		burst(t, front.URL, clients, n)
		requests += n
		got := byTarget(rec.wait(t, 2*n-newlyHeld+cancelled))
		if got["b"]["mirrored"] != n || len(got["b"]) != 1 {
			t.Errorf("healthy target b: %v of %d requests, want every one mirrored", got["b"], n)
		}
		return got["a"]
	}
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	// holds waits for the newly held copies to reach the hanging shadow
	holds := func(newly, total int) {
		t.Helper()
		for range newly {
			receive(t, a.hung, "a copy held by the hanging shadow")
		}
		if got := int(testutil.ToFloat64(ta.inFlight)); got != total {
			t.Errorf("copies in flight to a = %d, want %d", got, total)
		}
	}

	// fast: nothing dropped
	if got := phase(1, 40, 0, 0); got["mirrored"] != 40 {
		t.Errorf("fast shadow: %v, want all 40 mirrored", got)
	}
	dialledFast, _ := a.sockets()

	// a hangs: a burst of 200 has the initial limit's copies held, no
	// more; the rest wait for a slot, in vain, and are dropped; no more
	// connections are dialled than the limit
	a.hanging.Store(true)
	if got := phase(8, 200, initialLimit, 0); got["dropped_concurrency"] != 200-initialLimit || len(got) != 1 {
		t.Errorf("burst to a hanging shadow: %v, want %d dropped_concurrency", got, 200-initialLimit)
	}
	holds(initialLimit, initialLimit)
	if dialled, peak := a.sockets(); dialled-dialledFast > initialLimit || peak > initialLimit {
		t.Errorf("the burst dialled %d connections, %d open at once, want at most %d", dialled-dialledFast, peak, initialLimit)
	}

	// once its copies are late and nothing answers, the limit halves
	// every interval, down to the floor, and the late copies are
	// cancelled; the request that finds them late waits for the slot
	// that their cancellation frees, and is held in turn
	advance(minLate + updateInterval)
	// (each phase waits for its copy to reach the shadow: the copy takes
	// its slot in its own goroutine, and the clock must not move before)
	if got := phase(1, 1, 1, initialLimit); got["cancelled_late"] != initialLimit || len(got) != 1 {
		t.Errorf("the first request once the copies are late: %v, want %d cancelled_late", got, initialLimit)
	}
	holds(1, 1)
	for i, want := range []int{initialLimit / 4, defaultFloor} {
		advance(updateInterval)
		phase(1, 1, 1, 0)
		holds(1, 2+i)
		if got := ta.onlyReplica(t).state.limit.current(); got != want {
			t.Errorf("limit = %d, want %d", got, want)
		}
	}
	if got := phase(8, 20, defaultFloor-3, 0); got["dropped_concurrency"] != 20-(defaultFloor-3) {
		t.Errorf("a burst at the floor: %v, want all but %d dropped", got, defaultFloor-3)
	}
	holds(defaultFloor-3, defaultFloor)
	if got := testutil.ToFloat64(ta.limitGauge); got != defaultFloor {
		t.Errorf("concurrency_limit gauge = %v, want the floor, %d", got, defaultFloor)
	}
	// a cancelled copy's connection is closed as its slot goes back, but
	// the shadow sees it close a moment later; the copies that took the
	// freed slots may overlap with that moment
	if _, peak := a.sockets(); peak > initialLimit+defaultFloor {
		t.Errorf("%d connections open at once to the hanging shadow, want at most %d", peak, initialLimit+defaultFloor)
	}

	// a recovers: the copies it still holds are cancelled once late, and
	// every new copy is mirrored again
	a.hanging.Store(false)
	advance(minLate + updateInterval)
	if got := phase(1, 40, 0, defaultFloor); got["cancelled_late"] != defaultFloor || got["mirrored"] != 40 {
		t.Errorf("after recovery: %v, want the %d held cancelled and all 40 mirrored", got, defaultFloor)
	}
	if got := testutil.ToFloat64(ta.waitingGauge); got != 0 {
		t.Errorf("waiting gauge = %v once every copy has ended, want 0", got)
	}

	var total int
	for o := range numOutcomes {
		total += int(testutil.ToFloat64(ta.counters[o]))
	}
	if total != requests {
		t.Errorf("target a counted %d outcomes for %d requests", total, requests)
	}
}

// TestSharedMaxInFlight checks that with adaptation off, the targets'
// equal shares of max_in_flight keep a hanging target from taking the
// slots of a healthy one, as one shared pool did not.
func TestSharedMaxInFlight(t *testing.T) {
	rec := recordOutcomes(t)
	a := newSwitchingShadow(t)
	a.hanging.Store(true)
	b := newSwitchingShadow(t)
	h := provisionHandler(t, fmt.Sprintf(`{"targets":[{"name":"a","upstream":%q,"concurrency":{"fixed":true}},{"name":"b","upstream":%q,"concurrency":{"fixed":true}}],"max_in_flight":200}`, a.URL, b.URL))
	front := serveThrough(t, h, checksumPrimary)

	// with one pool of 200, a would hold all 200 slots and b would lose
	// the rest of its copies
	const n, share = 400, 100
	burst(t, front.URL, 8, n)
	got := byTarget(rec.wait(t, 2*n-share))
	if got["b"]["mirrored"] != n {
		t.Errorf("healthy target b: %v, want all %d mirrored", got["b"], n)
	}
	if got["a"]["dropped_concurrency"] != n-share {
		t.Errorf("hanging target a: %v, want %d dropped_concurrency past its share of %d", got["a"], n-share, share)
	}
	for range share {
		receive(t, a.hung, "a copy held by the hanging shadow")
	}
	if _, peak := a.sockets(); peak > share {
		t.Errorf("hanging target a held %d connections at once, want at most its share, %d", peak, share)
	}
	if got := h.Targets[0].onlyReplica(t).state.limit.current(); got != share {
		t.Errorf("fixed limit = %d, want the share of max_in_flight, %d", got, share)
	}
}
