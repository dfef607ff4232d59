package mirror

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Live reloads under load: a constant rate of POSTs with bodies runs while
// the admin API reloads the config reloadCount times, alternating targets
// (one of them, every third load, a pool of both shadows), percent and
// max_in_flight through POST /load and PATCH. The same
// schedule runs against plain Caddy (reverse_proxy alone) as the baseline.
const (
	reloadRate  = 500 // requests per second
	reloadCount = 50
	reloadEvery = 60 * time.Millisecond
)

// bodyCheckingPrimary answers 200 when a request's body matches its
// X-Body-Sum header, and 422 when it does not.
type bodyCheckingPrimary struct {
	*httptest.Server
	received, corrupted atomic.Int64
	mu                  sync.Mutex
	keys                map[string]int // requests by Idempotency-Key
}

func newBodyCheckingPrimary(t *testing.T) *bodyCheckingPrimary {
	p := &bodyCheckingPrimary{keys: make(map[string]int)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		_, err := io.Copy(sum, r.Body)
		p.received.Add(1)
		p.mu.Lock()
		p.keys[r.Header.Get("Idempotency-Key")]++
		p.mu.Unlock()
		if err != nil || hex.EncodeToString(sum.Sum(nil)) != r.Header.Get("X-Body-Sum") {
			p.corrupted.Add(1)
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		_, _ = io.WriteString(w, "primary ok")
	}))
	t.Cleanup(p.Close)
	return p
}

// countingShadow counts the copies it receives and how many it is still
// answering.
type countingShadow struct {
	*httptest.Server
	received, active atomic.Int64
}

func newCountingShadow(t *testing.T) *countingShadow {
	s := new(countingShadow)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Add(-1)
		s.received.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

// reloadConfig is a full Caddy JSON config: the test globals and one
// server, "front", that runs handlers.
func reloadConfig(handlers ...any) []byte {
	cfg, _ := json.Marshal(map[string]any{
		"admin": adminJSON(),
		"apps": map[string]any{"http": map[string]any{
			"servers": map[string]any{"front": map[string]any{
				"listen":       []string{frontAddress + ":0"},
				"idle_timeout": int64(5 * time.Minute),
				"routes":       []any{map[string]any{"handle": handlers}},
			}},
		}},
	})
	return cfg
}

// loadResult is what the client side of one run saw.
type loadResult struct {
	sent, failed int64
	retried      int64 // attempts sent again after a connection error
	firstFailure string
}

// reloadEpoch counts the reloads of a schedule that have returned; a
// request that failed waits for the next one before it is sent again.
type reloadEpoch struct {
	mu      sync.Mutex
	changed *sync.Cond
	n       int
	over    bool // the schedule has ended: no reload is coming
}

func newReloadEpoch() *reloadEpoch {
	e := new(reloadEpoch)
	e.changed = sync.NewCond(&e.mu)
	return e
}

// now returns the number of reloads that have returned.
func (e *reloadEpoch) now() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// advance records that a reload returned, or with over that the schedule
// ended.
func (e *reloadEpoch) advance(over bool) {
	e.mu.Lock()
	e.n++
	e.over = e.over || over
	e.mu.Unlock()
	e.changed.Broadcast()
}

// waitPast waits until a reload after the epoch n has returned, or the
// schedule has ended. It reports whether one of them happened since n,
// false when the schedule ended with no reload after n: a request that
// fails then fails with no reload to blame.
func (e *reloadEpoch) waitPast(n int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.n <= n && !e.over {
		e.changed.Wait()
	}
	return e.n > n
}

// runReloadSchedule sends POSTs at reloadRate while reload(i) runs
// reloadCount times, and returns what the clients saw.
func runReloadSchedule(t *testing.T, reload func(i int)) loadResult {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: waitLimit}
	defer client.CloseIdleConnections()
	var (
		res   loadResult
		mu    sync.Mutex
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		epoch = newReloadEpoch()
	)
	send := func() {
		defer wg.Done()
		body := make([]byte, 1+int(atomic.AddInt64(&res.sent, 1)%8192))
		_, _ = rand.Read(body)
		sum := sha256.Sum256(body)
		key := rand.Text()
		var failure string
		// A request that fails on a connection error is sent again once
		// the reload during which it failed has returned: Caddy's own
		// reloads drop a connection now and then, mirror or not, and
		// more often on a busy machine. It counts as failed only when it
		// failed with no reload under way, or the schedule ended.
		for {
			sentAt := epoch.now()
			req, _ := http.NewRequest(http.MethodPost, frontURL+"/orders", bytes.NewReader(body))
			req.Header.Set("X-Body-Sum", hex.EncodeToString(sum[:]))
			// Caddy closes idle keep-alive connections on every reload; a
			// POST that races the close is retried by Go's client only
			// when it is marked idempotent, and only on a reused
			// connection. A new connection that the old server closes as it
			// shuts down, or that the listener hand-over resets, fails
			// too, with no mirror configured: the key makes sending it
			// again safe.
			req.Header.Set("Idempotency-Key", key)
			resp, err := client.Do(req)
			if err != nil {
				failure = err.Error()
				if !epoch.waitPast(sentAt) || epoch.now() > sentAt+reloadCount {
					break
				}
				mu.Lock()
				res.retried++
				mu.Unlock()
				continue
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			failure = ""
			if resp.StatusCode != http.StatusOK || string(got) != "primary ok" {
				failure = fmt.Sprintf("%s %q", resp.Status, got)
			}
			break
		}
		if failure != "" {
			mu.Lock()
			res.failed++
			if res.firstFailure == "" {
				res.firstFailure = failure
			}
			mu.Unlock()
		}
	}
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Second / reloadRate)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				wg.Add(1)
				go send()
			case <-stop:
				return
			}
		}
	}()
	reloadTick := time.NewTicker(reloadEvery)
	for i := range reloadCount {
		<-reloadTick.C
		reload(i)
		epoch.advance(false)
	}
	reloadTick.Stop()
	close(stop)
	<-loadDone
	epoch.advance(true)
	wg.Wait()
	return res
}

// settled waits until the process's goroutines and open files are back
// to at most the given counts plus a little slack, polling as goleak does,
// and returns the last counts seen.
func settled(goroutines, fds int) (int, int) {
	deadline := time.Now().Add(waitLimit)
	for {
		g, f := runtime.NumGoroutine(), openFiles()
		if (g <= goroutines+4 && f <= fds+4) || time.Now().After(deadline) {
			return g, f
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFiles counts this process's open file descriptors (-1 where
// /proc is not available).
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

func TestE2E_ReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	primary := newBodyCheckingPrimary(t)
	shadows := []*countingShadow{newCountingShadow(t), newCountingShadow(t)}
	rec := recordOutcomes(t)
	// Keep-alive to the primary is off: reverse_proxy's own connections
	// given back after a reload has cleaned up its transport stay idle
	// until their idle timeout (Caddy's behaviour, 2 minutes), and what
	// must return to baseline here is what the mirror holds.
	proxy := map[string]any{"handler": "reverse_proxy",
		"upstreams": []any{map[string]any{"dial": strings.TrimPrefix(primary.URL, "http://")}},
		"transport": map[string]any{"protocol": "http", "keep_alive": map[string]any{"enabled": false}},
	}
	mirror := func(i int) map[string]any {
		targets := []any{map[string]any{"upstream": shadows[i%2].URL, "percent": 100}}
		switch i % 3 {
		case 0:
			targets = append(targets, map[string]any{"upstream": shadows[(i+1)%2].URL, "percent": 50})
		case 1: // one target, a pool of both shadows (issue 21)
			targets = []any{map[string]any{"upstreams": []string{shadows[0].URL, shadows[1].URL}, "percent": 100,
				"selection_policy": map[string]any{"policy": "round_robin"}}}
		}
		return map[string]any{"handler": "mirror", "targets": targets, "max_in_flight": 16 << (i % 4)}
	}

	tester := loadSites(t, "") // the admin endpoint
	unloadMirrors(tester)
	goroutines0, fds0 := runtime.NumGoroutine(), openFiles()

	// the baseline: plain Caddy, the same schedule of loads and PATCHes
	adminDo(t, http.MethodPost, "/load", reloadConfig(proxy))
	base := runReloadSchedule(t, func(i int) {
		if i%2 == 0 {
			adminDo(t, http.MethodPost, "/load", reloadConfig(proxy))
		} else {
			adminDo(t, http.MethodPatch, "/config/apps/http/servers/front/idle_timeout", []byte(fmt.Sprint(int64(time.Minute)+int64(i))))
		}
	})

	adminDo(t, http.MethodPost, "/load", reloadConfig(mirror(0), proxy))
	got := runReloadSchedule(t, func(i int) {
		if i%2 == 0 {
			adminDo(t, http.MethodPost, "/load", reloadConfig(mirror(i), proxy))
		} else {
			adminDo(t, http.MethodPatch, "/config/apps/http/servers/front/routes/0/handle/0/targets/0/percent", []byte(fmt.Sprint(i%101)))
		}
	})
	unloadMirrors(tester) // waits for the last config's copies
	t.Logf("baseline: %d requests, %d sent again, %d failed; with the mirror: %d requests, %d sent again, %d failed",
		base.sent, base.retried, base.failed, got.sent, got.retried, got.failed)

	if base.failed != 0 || got.failed != 0 {
		t.Errorf("failed requests: %d of %d with the mirror, %d of %d without (first: %q, %q); want none",
			got.failed, got.sent, base.failed, base.sent, got.firstFailure, base.firstFailure)
	}
	primary.mu.Lock()
	distinct, twice := len(primary.keys), 0
	for _, n := range primary.keys {
		if n > 1 {
			twice++
		}
	}
	primary.mu.Unlock()
	if int64(distinct) != base.sent+got.sent || twice != 0 {
		t.Errorf("the primary received %d distinct requests (%d more than once), want each of the %d exactly once", distinct, twice, base.sent+got.sent)
	}
	if n := primary.corrupted.Load(); n != 0 {
		t.Errorf("the primary received %d bodies that differ from what was sent", n)
	}

	outcomes := counts(recorded(rec))
	var copies int64
	for _, s := range shadows {
		copies += s.received.Load()
		if n := s.active.Load(); n != 0 {
			t.Errorf("a shadow is still answering %d copies after the unload", n)
		}
	}
	if int64(outcomes["mirrored"]) > copies || outcomes["mirrored"] == 0 {
		t.Errorf("outcomes %v for %d copies received by the shadows", outcomes, copies)
	}
	t.Logf("copies: %d received by the shadows; outcomes %v", copies, outcomes)

	goroutines, fds := settled(goroutines0, fds0)
	if goroutines > goroutines0+4 || fds > fds0+4 {
		t.Errorf("after the reloads: %d goroutines and %d open files, want the %d and %d of before (±4)", goroutines, fds, goroutines0, fds0)
	}
}

// recorded returns every outcome recorded so far.
func recorded(rec outcomeRecorder) []recordedOutcome {
	var out []recordedOutcome
	for {
		select {
		case o := <-rec:
			out = append(out, o)
		default:
			return out
		}
	}
}
