package main

import (
	"math/rand/v2"
	"time"
)

// evenSchedule is when requests at rate per second fall due over d: one
// every 1/rate, from 0.
func evenSchedule(rate float64, d time.Duration) []time.Duration {
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d / interval)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * interval
	}
	return out
}

// poissonSchedule is when requests arriving as a Poisson process at rate
// per second fall due over d: exponentially distributed gaps of mean
// 1/rate, from a generator seeded with seed, so that a run can be
// repeated.
func poissonSchedule(rate float64, d time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []time.Duration
	for at := time.Duration(0); ; {
		at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if at >= d {
			return out
		}
		out = append(out, at)
	}
}
