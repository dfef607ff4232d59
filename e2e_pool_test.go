package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
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
