package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// withRatio formats a value with its ratio, or the value alone when the
// ratio is unknown (0).
func withRatio(v, ratio float64, format string) string {
	if ratio == 0 {
		return fmt.Sprintf(format, v)
	}
	return fmt.Sprintf(format+" (%.3f)", v, ratio)
}

// isolationRows are the variants a table of scenario 1 shows: the
// baseline's first and last runs in its place, then the others.
func isolationRows(variants []variant, caddyOnly bool) []variant {
	rows := []variant{{name: baselineFirst, server: "caddy"}, {name: baselineLast, server: "caddy"}}
	for _, v := range variants[1:] {
		if !caddyOnly || v.server == "caddy" {
			rows = append(rows, v)
		}
	}
	return rows
}

// latencyTable shows each variant's throughput and latency with the
// median of its ratios to the baseline of the same repetition, each
// repetition's p99 ratio, the p99 of all its runs pooled, and how many
// samples the p99 rests on.
func (ir isolationRuns) latencyTable(variants []variant) string {
	rows := [][]string{}
	for _, v := range isolationRows(variants, false) {
		ms := ir.res[v.name]
		pooled, n := ir.pooledP99(v.name)
		basePooled, _ := ir.pooledP99(pooledBaselineNames(v)...)
		perRun := median(ms, func(m measurement) float64 { return float64(m.latency.TotalCount()) })
		rows = append(rows, []string{v.name,
			withRatio(median(ms, rps), medianOf(ir.ratios(v, rps)), "%.1f"),
			withRatio(median(ms, p50), medianOf(ir.ratios(v, p50)), "%.2f"),
			withRatio(median(ms, p99), medianOf(ir.ratios(v, p99)), "%.2f"),
			joinRatios(ir.ratios(v, p99)),
			withRatio(pooled, pooled/basePooled, "%.2f"),
			fmt.Sprintf("%.0f (%.0f); %d (%d)", perRun, perRun/100, n, n/100),
			fmt.Sprintf("%.0f", median(ms, errs)),
			outcomesCell(ms)})
	}
	return mdTable([]string{"variant", "req/s (ratio)", "p50 ms (ratio)", "p99 ms (ratio)", "p99 ratio, each repetition",
		"p99 ms, runs pooled (ratio)", "samples per run (over its p99); pooled (over its p99)", "errors", "mirror outcomes (last run)"}, rows)
}

// baselineTable shows, for each repetition, the baseline's first and last
// runs and how far apart they are, and the load generator's and the
// primary's process's scheduling latency in each.
func (ir isolationRuns) baselineTable() string {
	rows := [][]string{}
	for rep := range ir.reps {
		first, _ := ir.run(baselineFirst, rep)
		last, _ := ir.run(baselineLast, rep)
		rows = append(rows, []string{fmt.Sprint(rep + 1),
			fmt.Sprintf("%.2f / %.2f", p50(first), p99(first)), fmt.Sprintf("%.2f / %.2f", p50(last), p99(last)),
			fmt.Sprintf("%.3f", p99(last)/p99(first)),
			fmt.Sprintf("%.0f / %.0f", schedP99Micros(first.loadSched), schedP99Micros(last.loadSched)),
			fmt.Sprintf("%.0f / %.0f", schedP99Micros(first.backSched), schedP99Micros(last.backSched))})
	}
	lo, hi := ir.baselineAcross()
	return "The baseline's own spread:\n\n" + mdTable([]string{"repetition", "first run p50 / p99 ms", "last run p50 / p99 ms", "last ÷ first p99",
		"load generator scheduling latency p99 µs, first / last", "the primary's process's scheduling latency p99 µs, first / last"}, rows) +
		fmt.Sprintf("\nAcross repetitions the baseline's p99 (the mean of its two runs) ranged from %.2f to %.2f ms (%.3f).\n", lo, hi, hi/lo)
}

// resourceTable shows what each Caddy variant used during its phase.
func (ir isolationRuns) resourceTable(variants []variant) string {
	caddyCPU := cpuShare(func(m measurement) time.Duration { return m.cpu })
	primaryCPU := cpuShare(func(m measurement) time.Duration { return m.backCPU - m.shadowCPU })
	shadowCPU := cpuShare(func(m measurement) time.Duration { return m.shadowCPU })
	peakRSS := func(m measurement) float64 { return float64(m.peakRSS) / (1 << 20) }
	rows := [][]string{}
	exposed := false
	for _, v := range isolationRows(variants, true) {
		ms := ir.res[v.name]
		caddySched := "–"
		if s := median(ms, func(m measurement) float64 { return m.proxySched }); s >= 0 {
			exposed, caddySched = true, fmt.Sprintf("%.0f", s*1e6)
		}
		rows = append(rows, []string{v.name,
			withRatio(median(ms, caddyCPU), medianOf(ir.ratios(v, caddyCPU)), "%.2f"),
			withRatio(median(ms, primaryCPU), medianOf(ir.ratios(v, primaryCPU)), "%.2f"),
			fmt.Sprintf("%.2f", median(ms, shadowCPU)),
			withRatio(median(ms, peakRSS), medianOf(ir.ratios(v, peakRSS)), "%.0f"),
			dash(median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return s.goroutines }) }), "%.0f"),
			fmt.Sprintf("%.0f", median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return float64(s.held) }) })),
			fmt.Sprintf("%.0f", median(ms, func(m measurement) float64 { return schedP99Micros(m.loadSched) })),
			fmt.Sprintf("%.0f", median(ms, func(m measurement) float64 { return schedP99Micros(m.backSched) })),
			caddySched})
	}
	note := "\nCaddy's own scheduling latency is not reported: its `/metrics` has no `go_sched_latencies_seconds` (Caddy registers client_golang's Go collector " +
		"with its defaults, which leave the runtime's `/sched/latencies:seconds` out). The load generator's and the primary's process's, from runtime/metrics in each, " +
		"share the same cores: a copy's goroutines that kept Caddy's CPUs busy would show as a longer wait in both.\n"
	if exposed {
		note = "\nCaddy's scheduling latency p99 is read from its `go_sched_latencies_seconds`, since its start.\n"
	}
	return "During each Caddy variant's phase (ratios to the baseline of the same repetition; sockets are those among Caddy's own descriptors whose remote port is the shadow's, sampled every second):\n\n" +
		mdTable([]string{"variant", "Caddy CPU, cores (ratio)", "the primary's process's CPU, cores (ratio)", "the shadows' process's CPU, cores", "peak RSS MiB (ratio)", "peak goroutines",
			"peak sockets Caddy holds to the shadow", "load generator scheduling p99 µs", "the primary's process's scheduling p99 µs", "Caddy's scheduling p99 µs"}, rows) + note
}

// settledTable shows each Caddy variant once its load had ended and its
// copies were gone.
func (ir isolationRuns) settledTable(variants []variant) string {
	rows := [][]string{}
	for _, v := range isolationRows(variants, true) {
		ms := ir.res[v.name]
		st := func(f func(settledState) float64) func(measurement) float64 {
			return func(m measurement) float64 { return f(m.settled) }
		}
		rss := st(func(s settledState) float64 { return float64(s.rss) / (1 << 20) })
		rows = append(rows, []string{v.name, settledAfter(ms),
			fmt.Sprintf("%.0f", median(ms, st(func(s settledState) float64 { return s.inFlight }))),
			withRatio(median(ms, rss), medianOf(ir.ratios(v, rss)), "%.0f"),
			fmt.Sprintf("%.0f", median(ms, st(func(s settledState) float64 { return s.goroutines }))),
			fmt.Sprintf("%.0f", median(ms, st(func(s settledState) float64 { return float64(s.held) }))),
			comparesCell(ms)})
	}
	return fmt.Sprintf("After each Caddy variant's load, once no copy was in flight and its goroutine count had stayed the same, give or take %d, for %d samples %s apart (medians over the repetitions):\n\n", settleJitter, settleSteady, settleEvery) +
		mdTable([]string{"variant", "settled after", "copies in flight then", "RSS MiB then (ratio)", "goroutines then", "sockets Caddy holds to the shadow then", "compare results (last run)"}, rows)
}

// settledAfter says how long the runs took to settle, or how many did
// not.
func settledAfter(ms []measurement) string {
	var after []float64
	unsettled := 0
	for _, m := range ms {
		after = append(after, m.settled.after.Seconds())
		if !m.settled.settled {
			unsettled++
		}
	}
	if unsettled > 0 {
		return fmt.Sprintf("not within %.0f s in %d of %d runs", slices.Max(after), unsettled, len(ms))
	}
	return fmt.Sprintf("%.1f s", medianOf(after))
}

// comparesCell lists the compare results of the last run.
func comparesCell(ms []measurement) string {
	if len(ms) == 0 || len(ms[len(ms)-1].compares) == 0 {
		return "–"
	}
	var parts []string
	for name, n := range ms[len(ms)-1].compares {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// baselineSpreadNote says how far the baseline moved by itself.
func (ir isolationRuns) baselineSpreadNote() (within, across float64, note string) {
	within = worstSpread(ir.baselineDrift())
	lo, hi := ir.baselineAcross()
	if lo > 0 {
		across = hi / lo
	}
	return within, across, fmt.Sprintf("the baseline's own p99 moved by a factor of up to %.3f between its two runs of a repetition (each: %s) and of %.3f across repetitions",
		within, joinRatios(ir.baselineDrift()), across)
}

// warnings flags every ratio far below 1: a mirror does not make the
// primary faster, so such a ratio says the measurement went wrong.
func (ir isolationRuns) warnings(variants []variant) []string {
	_, _, spreadNote := ir.baselineSpreadNote()
	var out []string
	for _, v := range variants[1:] {
		for _, q := range []struct {
			name string
			f    func(measurement) float64
		}{{"p50", p50}, {"p99", p99}} {
			if r := medianOf(ir.ratios(v, q.f)); r > 0 && r < suspectRatio {
				out = append(out, fmt.Sprintf("**Warning**: %s: the %s ratio %.2f is below %.1f; a mirror does not make the primary faster, so this measurement is suspect (%s).\n",
					v.name, q.name, r, suspectRatio, spreadNote))
			}
		}
	}
	return out
}

// verdicts judges each Caddy variant against the target, the baseline's
// spread against a 10% change, and the fast shadow's tail against that
// spread.
func (ir isolationRuns) verdicts(sec *section, variants []variant) {
	for _, v := range variants[1:] {
		if v.server != "caddy" {
			continue
		}
		if v.beside != "" {
			ir.besideVerdict(sec, v)
			continue
		}
		thr, r50, r99 := medianOf(ir.ratios(v, rps)), medianOf(ir.ratios(v, p50)), medianOf(ir.ratios(v, p99))
		sec.verdict(thr >= 0.95 && r50 <= 1.2 && r99 <= 1.2 && median(ir.res[v.name], errs) == 0,
			"%s: throughput %.3f, p50 %.2f, p99 %.2f of the baseline (medians of the repetitions' ratios)", v.name, thr, r50, r99)
	}
	within, across, note := ir.baselineSpreadNote()
	sec.verdict(within <= 1.1 && across <= 1.1, "resolution: %s; a 10%% change is visible only when both are within 1.10", note)
	fast := variant{name: "caddy mirror, fast shadow", server: "caddy"}
	if _, ok := ir.res[fast.name]; !ok {
		return
	}
	r := ir.ratios(fast, p99)
	beyond := spread(medianOf(r)) > max(within, across)
	sec.verdict(!beyond || medianOf(r) <= 1,
		"fast shadow: the primary's p99 %.3f of the baseline's (each repetition: %s), against the baseline's own spread of %.3f within and %.3f across repetitions: %s",
		medianOf(r), joinRatios(r), within, across, map[bool]string{true: "beyond the spread", false: "within the spread, no difference that this run can see"}[beyond])
}
