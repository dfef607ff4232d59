package main

import (
	"encoding/json"
	"math"
	"testing"
)

// TestSchedHistogramQuantile: since subtracts an earlier reading, and the
// quantile is the upper bound of its bucket (the lower one for the last).
func TestSchedHistogramQuantile(t *testing.T) {
	before := schedHistogram{Counts: []uint64{5, 0, 0, 0}, Buckets: []float64{0, 1e-6, 1e-5, 1e-4, math.MaxFloat64}}
	after := schedHistogram{Counts: []uint64{95, 4, 0, 1}, Buckets: before.Buckets}
	d := after.since(before)
	if d.total() != 95 {
		t.Fatalf("%d latencies since; want 95", d.total())
	}
	for q, want := range map[float64]float64{0.5: 1e-6, 0.95: 1e-5, 0.999: 1e-4} {
		if got := d.quantile(q); got != want {
			t.Errorf("quantile %g = %g, want %g", q, got, want)
		}
	}
	if (schedHistogram{}).quantile(0.99) != 0 {
		t.Error("an empty histogram's quantile is not 0")
	}
}

// TestReadSchedLatenciesTravelsAsJSON: this process's histogram, its
// infinite bounds clamped, encodes as JSON.
func TestReadSchedLatenciesTravelsAsJSON(t *testing.T) {
	h := readSchedLatencies()
	if len(h.Buckets) != len(h.Counts)+1 || len(h.Counts) == 0 {
		t.Fatalf("%d counts, %d bounds", len(h.Counts), len(h.Buckets))
	}
	if _, err := json.Marshal(h); err != nil {
		t.Fatal(err)
	}
}
