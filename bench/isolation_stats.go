package main

import (
	"slices"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// isolationRuns are scenario 1's measurements, read repetition by
// repetition: a variant's run is compared with its baseline's in the same
// repetition, which for Caddy is the mean of the baseline's first and last
// runs.
type isolationRuns struct {
	res  results
	reps int
}

// run returns the variant's measurement in repetition rep, and whether
// there is one.
func (ir isolationRuns) run(name string, rep int) (measurement, bool) {
	ms := ir.res[name]
	if rep >= len(ms) {
		return measurement{}, false
	}
	return ms[rep], true
}

// baseline returns f of v's baseline in repetition rep: for Caddy the mean
// of the first and last runs, for nginx its proxy_pass run.
func (ir isolationRuns) baseline(v variant, rep int, f func(measurement) float64) float64 {
	if v.server == "nginx" {
		m, _ := ir.run(baselineOf(v), rep)
		return f(m)
	}
	first, _ := ir.run(baselineFirst, rep)
	last, _ := ir.run(baselineLast, rep)
	return (f(first) + f(last)) / 2
}

// ratios returns, for each repetition, f of the variant's run over f of
// its baseline in the same repetition.
func (ir isolationRuns) ratios(v variant, f func(measurement) float64) []float64 {
	var out []float64
	for rep := range ir.reps {
		m, ok := ir.run(v.name, rep)
		if base := ir.baseline(v, rep, f); ok && base > 0 {
			out = append(out, f(m)/base)
		}
	}
	return out
}

// pooled merges the latencies of every run of the named variants.
func (ir isolationRuns) pooled(names ...string) *hdrhistogram.Histogram {
	h := newLatencyHistogram()
	for _, name := range names {
		for _, m := range ir.res[name] {
			if m.latency != nil {
				h.Merge(m.latency)
			}
		}
	}
	return h
}

// pooledBaselineNames are the runs v's pooled latencies are compared with.
func pooledBaselineNames(v variant) []string {
	if v.server == "nginx" {
		return []string{baselineOf(v)}
	}
	return []string{baselineFirst, baselineLast}
}

// pooledP99 returns the p99 in ms of every run of the variant, merged,
// and how many samples that rests on.
func (ir isolationRuns) pooledP99(names ...string) (ms float64, samples int64) {
	h := ir.pooled(names...)
	return float64(h.ValueAtQuantile(99)) / 1000, h.TotalCount()
}

// baselineDrift returns, for each repetition, the baseline's last run's
// p99 over its first's.
func (ir isolationRuns) baselineDrift() []float64 {
	var out []float64
	for rep := range ir.reps {
		first, ok1 := ir.run(baselineFirst, rep)
		last, ok2 := ir.run(baselineLast, rep)
		if ok1 && ok2 && p99(first) > 0 {
			out = append(out, p99(last)/p99(first))
		}
	}
	return out
}

// baselineAcross returns the lowest and highest of the repetitions'
// baseline p99s (each the mean of its two runs).
func (ir isolationRuns) baselineAcross() (lo, hi float64) {
	var vals []float64
	for rep := range ir.reps {
		vals = append(vals, ir.baseline(caddyBaseline, rep, p99))
	}
	if len(vals) == 0 {
		return 0, 0
	}
	return slices.Min(vals), slices.Max(vals)
}

// spread is how far apart two measurements of the same thing are, as a
// factor ≥ 1: 1.1 for 10% either way.
func spread(ratio float64) float64 {
	if ratio <= 0 {
		return 0
	}
	return max(ratio, 1/ratio)
}

// worstSpread is the largest spread of the ratios.
func worstSpread(ratios []float64) float64 {
	var w float64
	for _, r := range ratios {
		w = max(w, spread(r))
	}
	return w
}

// schedP99Micros is a scheduling-latency histogram's p99 in µs.
func schedP99Micros(h schedHistogram) float64 {
	return h.quantile(0.99) * 1e6
}
