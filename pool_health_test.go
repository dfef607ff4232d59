package mirror

import (
	"net/http"
	"testing"
	"time"
)

// TestPoolUnhealthyStatus: with unhealthy_status 5xx, a replica behind a
// relay that answers 503 is ejected after max_fails, and the healthy
// replica gets the copies; every copy is still mirrored, the 503s too.
func TestPoolUnhealthyStatus(t *testing.T) {
	healthy := newReplicaServer(t)
	relay := newReplicaServer(t)
	relay.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		relay.handler().ServeHTTP(&statusWriter{ResponseWriter: w, status: http.StatusServiceUnavailable}, r)
	})
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{healthy.URL, relay.URL}, `,"selection_policy":{"policy":"round_robin"},"max_fails":2,"unhealthy_status":[5]`))
	front := serveThrough(t, h, checksumPrimary)
	if got := sendSequentially(t, front.URL, rec, 20); got["mirrored"] != 20 {
		t.Errorf("outcomes %v, want 20 mirrored: a 503 is an answer", got)
	}
	if n := relay.count(); n != 2 {
		t.Errorf("the replica answering 503 got %d copies, want 2 (max_fails), then none", n)
	}
	if n := h.Targets[0].pool.healthy(); n != 1 {
		t.Errorf("%d replicas healthy, want 1", n)
	}
}

// TestPoolUnhealthyLatency: with unhealthy_latency 1s, a replica whose
// headers take 2s on the mirror's clock is ejected after max_fails.
func TestPoolUnhealthyLatency(t *testing.T) {
	clock := fakeClock(t)
	fast := newReplicaServer(t)
	slow := newReplicaServer(t)
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clock.Add(int64(2 * time.Second)) // the answer takes 2s, as the mirror times it
		slow.handler().ServeHTTP(w, r)
	})
	rec := recordOutcomes(t)
	h := provisionHandler(t, poolConfig([]string{fast.URL, slow.URL}, `,"selection_policy":{"policy":"round_robin"},"max_fails":2,"unhealthy_latency":"1s","timeout":"1m","concurrency":{"fixed":true}`))
	front := serveThrough(t, h, checksumPrimary)
	if got := sendSequentially(t, front.URL, rec, 20); got["mirrored"] != 20 {
		t.Errorf("outcomes %v, want 20 mirrored", got)
	}
	if n := slow.count(); n != 2 {
		t.Errorf("the slow replica got %d copies, want 2 (max_fails), then none", n)
	}
}

// statusWriter answers with status instead of 200, as a relay in front of
// a missing replica does.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (w *statusWriter) WriteHeader(int) {
	if !w.written {
		w.written = true
		w.ResponseWriter.WriteHeader(w.status)
	}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.WriteHeader(0)
	return w.ResponseWriter.Write(p)
}
