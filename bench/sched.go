package main

import (
	"math"
	runtimemetrics "runtime/metrics"
)

// schedLatencyMetric is the Go runtime's histogram of how long goroutines
// waited, runnable, for a CPU.
const schedLatencyMetric = "/sched/latencies:seconds"

// schedHistogram is a copy of a process's schedLatencyMetric. Its
// infinite bucket bounds are held as ±math.MaxFloat64, so that it travels
// as JSON.
type schedHistogram struct {
	Counts  []uint64  `json:"counts"`
	Buckets []float64 `json:"buckets"` // len(Counts)+1 bounds
}

// readSchedLatencies reads this process's scheduling latencies so far.
func readSchedLatencies() schedHistogram {
	s := []runtimemetrics.Sample{{Name: schedLatencyMetric}}
	runtimemetrics.Read(s)
	if s[0].Value.Kind() != runtimemetrics.KindFloat64Histogram {
		return schedHistogram{}
	}
	h := s[0].Value.Float64Histogram()
	out := schedHistogram{Counts: append([]uint64(nil), h.Counts...), Buckets: make([]float64, len(h.Buckets))}
	for i, b := range h.Buckets {
		out.Buckets[i] = max(-math.MaxFloat64, min(math.MaxFloat64, b))
	}
	return out
}

// since returns the latencies recorded after before, a reading of the
// same process's histogram.
func (h schedHistogram) since(before schedHistogram) schedHistogram {
	if len(before.Counts) != len(h.Counts) {
		return h
	}
	out := schedHistogram{Counts: make([]uint64, len(h.Counts)), Buckets: h.Buckets}
	for i, c := range h.Counts {
		out.Counts[i] = c - min(c, before.Counts[i])
	}
	return out
}

// total is how many latencies the histogram holds.
func (h schedHistogram) total() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// quantile returns the upper bound of the bucket that holds quantile q
// (0–1), in seconds (its lower bound for the open-ended last bucket), or
// 0 for an empty histogram.
func (h schedHistogram) quantile(q float64) float64 {
	total := h.total()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= max(rank, 1) {
			if h.Buckets[i+1] >= math.MaxFloat64 {
				return h.Buckets[i]
			}
			return h.Buckets[i+1]
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}
