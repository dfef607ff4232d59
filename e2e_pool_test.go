package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolAsOperatorsSeeIt loads a Caddyfile pool of a live replica and a
// refusing one, as a user writes it, sends copies through a real site,
// and reads what an operator reads: the admin API's targets view, the
// replica metrics, and every copy delivered to the live replica.
func TestPoolAsOperatorsSeeIt(t *testing.T) {
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	live := newBackend(t, http.StatusOK, "v2")
	refusing := closedAddr(t)
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror {
		to %s %s {
			name reviews-v2
			lb_policy round_robin
			max_fails 2
		}
	}
	reverse_proxy %s
}
`, live.addr(), refusing, primary.addr()))
	t.Cleanup(func() { unloadMirrors(tester) })

	const n = 20
	for i := range n {
		if status, body := do(t, tester, mustRequest(t, http.MethodGet, fmt.Sprintf("%s/r/%d", frontURL, i))); status != http.StatusOK || body != "v1" {
			t.Fatalf("request %d: %d %q, want the primary's 200 v1", i, status, body)
		}
		receive(t, live.seen, "a copy at the live replica") // the refusing one's dials go to it
		rec.wait(t, 1)
	}
	if got := metricValue(t, "reviews-v2", "mirrored"); got != n {
		t.Errorf("mirrored = %v, want %d: every copy delivered", got, n)
	}

	var view struct {
		Targets []targetView `json:"targets"`
	}
	if err := json.Unmarshal(adminGet(t, "/mirror/targets"), &view); err != nil {
		t.Fatal(err)
	}
	var target *targetView
	for i := range view.Targets {
		if view.Targets[i].Target == "reviews-v2" {
			target = &view.Targets[i]
		}
	}
	if target == nil {
		t.Fatalf("/mirror/targets has no reviews-v2: %+v", view.Targets)
	}
	healthy := map[string]bool{}
	for _, r := range target.Replicas {
		healthy[r.Address] = r.Healthy
		if r.ConcurrencyLimit < 1 {
			t.Errorf("replica %s shows concurrency_limit %d, want its limit", r.Address, r.ConcurrencyLimit)
		}
	}
	if len(healthy) != 2 || !healthy[live.addr()] || healthy[refusing] || target.ReplicasHealthy != 1 {
		t.Errorf("/mirror/targets shows %+v, want %s healthy and %s ejected", target, live.addr(), refusing)
	}
	if got := scrape(t, "caddy_http_mirror_replicas_healthy", map[string]string{"target": "reviews-v2"}); got != 1 {
		t.Errorf("replicas_healthy = %v, want 1", got)
	}
	if got := scrape(t, "caddy_http_mirror_replica_copies_total", map[string]string{"target": "reviews-v2", "replica": live.addr()}); got < n {
		t.Errorf("replica_copies_total of the live replica = %v, want at least %d", got, n)
	}
}

// TestPoolActiveHealthChecks: reverse_proxy's active health checks, as a
// Caddyfile writes them, keep copies off a replica whose health_uri
// fails, and send it copies again once it passes.
func TestPoolActiveHealthChecks(t *testing.T) {
	var sick atomic.Bool
	sick.Store(true)
	withHealth := func(r *replicaServer, failing *atomic.Bool) {
		r.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/healthz" {
				if failing != nil && failing.Load() {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				return
			}
			r.handler().ServeHTTP(w, req)
		})
	}
	well, ill := newReplicaServer(t), newReplicaServer(t)
	withHealth(well, nil)
	withHealth(ill, &sick)
	rec := recordOutcomes(t)
	primary := newBackend(t, http.StatusOK, "v1")
	tester := loadSites(t, fmt.Sprintf(`
http://:0 {
	bind 127.0.0.1
	mirror %s %s {
		name checked
		lb_policy round_robin
		health_uri /healthz
		health_interval 50ms
	}
	reverse_proxy %s
}
`, well.URL, ill.URL, primary.addr()))
	t.Cleanup(func() { unloadMirrors(tester) })
	awaitHealthy := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var view struct{ Targets []targetView }
			if err := json.Unmarshal(adminGet(t, "/mirror/targets"), &view); err != nil {
				t.Fatal(err)
			}
			for _, tv := range view.Targets {
				if tv.Target == "checked" && tv.ReplicasHealthy == want {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("/mirror/targets after 30s: %+v, want %d replicas healthy", view.Targets, want)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, not a wait for it
		}
	}
	send := func(n int) map[string]int {
		t.Helper()
		var outcomes []recordedOutcome
		for i := range n {
			if status, _ := do(t, tester, mustRequest(t, http.MethodGet, fmt.Sprintf("%s/r/%d", frontURL, i))); status != http.StatusOK {
				t.Fatalf("request %d: %d, want the primary's 200", i, status)
			}
			outcomes = append(outcomes, rec.wait(t, 1)...)
		}
		return counts(outcomes)
	}

	awaitHealthy(1)
	if got := send(20); got["mirrored"] != 20 {
		t.Errorf("outcomes %v, want 20 mirrored", got)
	}
	if n := ill.count(); n != 0 {
		t.Errorf("the replica failing its health checks got %d copies, want 0", n)
	}

	sick.Store(false)
	awaitHealthy(2)
	if got := send(20); got["mirrored"] != 20 {
		t.Errorf("outcomes after it recovered %v, want 20 mirrored", got)
	}
	if n := ill.count(); n != 10 {
		t.Errorf("the recovered replica got %d of 20 copies under round robin, want 10", n)
	}
}
