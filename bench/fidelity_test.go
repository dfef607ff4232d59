package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestOutcomesAcrossLoads: each config's last sample is added up, as its
// registry started from 0.
func TestOutcomesAcrossLoads(t *testing.T) {
	s := func(loaded float64, mirrored, dropped float64) fidelitySample {
		return fidelitySample{loadedAt: loaded, outcomes: map[string]float64{"mirrored": mirrored, "dropped_concurrency": dropped}}
	}
	got := outcomesAcrossLoads([]fidelitySample{s(1, 5, 0), s(1, 9, 1), s(2, 3, 0), s(2, 7, 2), s(3, 1, 0)})
	if got["mirrored"] != 17 || got["dropped_concurrency"] != 3 {
		t.Fatalf("%v; want mirrored 17, dropped_concurrency 3", got)
	}
}

// TestSubtractCounts drops what did not grow.
func TestSubtractCounts(t *testing.T) {
	got := subtractCounts(map[string]float64{"a": 5, "b": 2}, map[string]float64{"a": 1, "b": 2, "c": 3})
	if len(got) != 1 || got["a"] != 4 || sumCounts(got) != 4 {
		t.Fatal(got)
	}
}

// TestBursts: each burst's requests are in flight together, and the next
// burst waits for them.
func TestBursts(t *testing.T) {
	var now, peak atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond) // holding the request, so the burst overlaps
		now.Add(-1)
		_, _ = w.Write(primaryBody)
	}))
	defer front.Close()
	q := newRequester(front.URL, 10, http.MethodGet, nil, primaryBody)
	defer q.close()
	var begun []int
	l := bursts(q, 3, 10, func(i int) { begun = append(begun, i) })
	if l.completed != 30 || l.errors != 0 || peak.Load() != 10 || len(begun) != 3 {
		t.Fatalf("%d completed, %d errors, at most %d at once, %d bursts", l.completed, l.errors, peak.Load(), len(begun))
	}
}

// TestSlowUploads: each uploader sends its body a byte at a time, with
// its length declared.
func TestSlowUploads(t *testing.T) {
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.ContentLength != 3 || string(body) != "sss" {
			http.Error(w, "got "+string(body), http.StatusBadRequest)
			return
		}
		_, _ = w.Write(primaryBody)
	}))
	defer front.Close()
	q := newRequester(front.URL, 2, http.MethodPost, nil, primaryBody)
	defer q.close()
	start := time.Now()
	l := slowUploads(q, 2, 3, 30*time.Millisecond, 5*time.Second)
	if l.completed != 2 || l.errors != 0 {
		t.Fatalf("%d completed, %d errors%s", l.completed, l.errors, l.firstErrorNote())
	}
	if took := time.Since(start); took < 60*time.Millisecond {
		t.Fatalf("took %s; the bytes were not paced", took)
	}
}

// TestFidelityProblems: a client error fails a case unless the case
// expects them, and so does a copy /metrics does not account for; nginx's
// rows and misses of the target do not.
func TestFidelityProblems(t *testing.T) {
	ok := load{completed: 10, latency: newLatencyHistogram()}
	failing := load{completed: 10, errors: 2, firstError: "502", latency: newLatencyHistogram()}
	rows := []fidelityRow{
		{caseID: "1", server: "caddy", selected: 10, delivered: 3, client: ok, accountingChecked: true},
		{caseID: "2", server: "caddy", client: failing},
		{caseID: "4", server: "caddy", client: failing, errorsExpected: true},
		{caseID: "3a", server: "caddy", selected: 10, client: ok, accountingChecked: true, unaccounted: 1},
		{caseID: "1", server: "nginx", client: failing},
	}
	got := fidelityProblems(rows)
	if len(got) != 2 || !strings.Contains(got[0], "case 2") || !strings.Contains(got[1], "case 3a") {
		t.Fatalf("%q", got)
	}
}
