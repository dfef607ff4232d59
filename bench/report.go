package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// section is one scenario's part of RESULTS.md.
type section struct {
	id, title, setup, target string
	tables                   []string
	verdicts                 []string
	problems                 []string
	latency                  []latencySeries // for the latency chart
	memory                   []memorySeries  // for the memory chart
}

// verdict records whether a target was met, in words.
func (s *section) verdict(met bool, format string, args ...any) {
	mark := "met"
	if !met {
		mark = "**missed**"
	}
	s.verdicts = append(s.verdicts, fmt.Sprintf("%s: %s", mark, fmt.Sprintf(format, args...)))
}

// latencySeries is one variant's latency percentiles, in milliseconds.
type latencySeries struct {
	name   string
	values []float64 // at chartQuantiles
}

var chartQuantiles = []float64{50, 90, 99, 99.9}

// memorySeries is one variant's samples over time.
type memorySeries struct {
	name    string
	samples []sample
}

// chartOf takes the median of each quantile over each variant's runs.
func chartOf(res results, variants []variant) []latencySeries {
	var out []latencySeries
	for _, v := range variants {
		s := latencySeries{name: v.name}
		for _, q := range chartQuantiles {
			s.values = append(s.values, median(res[v.name], func(m measurement) float64 { return m.quantileMs(q) }))
		}
		out = append(out, s)
	}
	return out
}

// latencyTable is the standard table: throughput and latency as absolute
// values with their ratio to the variant's baseline.
func latencyTable(res results, variants []variant, baseline func(variant) string) string {
	rows := [][]string{}
	for _, v := range variants {
		ms, base := res[v.name], res[baseline(v)]
		rows = append(rows, []string{v.name,
			ratioCell(median(ms, rps), median(base, rps), "%.1f"),
			ratioCell(median(ms, p50), median(base, p50), "%.2f"),
			ratioCell(median(ms, p99), median(base, p99), "%.2f"),
			fmt.Sprintf("%.0f", median(ms, errs)),
			outcomesCell(ms)})
	}
	return mdTable([]string{"variant", "req/s (ratio)", "p50 ms (ratio)", "p99 ms (ratio)", "errors", "mirror outcomes (last run)"}, rows)
}

// ratioCell formats a value with its ratio to base.
func ratioCell(v, base float64, format string) string {
	if base == 0 {
		return fmt.Sprintf(format, v)
	}
	return fmt.Sprintf(format+" (%.3f)", v, v/base)
}

// dash formats v, or a dash when there is no value.
func dash(v float64, format string) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// outcomesCell lists the mirror outcomes of the last run, and the copies
// still in flight when it ended.
func outcomesCell(ms []measurement) string {
	if len(ms) == 0 || ms[len(ms)-1].outcomes == nil {
		return "–"
	}
	m := ms[len(ms)-1]
	var parts []string
	for name, n := range m.outcomes {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, n))
	}
	slices.Sort(parts)
	if m.inFlight > 0 {
		parts = append(parts, fmt.Sprintf("in flight %.0f", m.inFlight))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func mdTable(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// report is the whole run's output.
type report struct {
	cfg      *config
	started  time.Time
	sections []section
}

// problems gathers what failed outright in every scenario.
func (r *report) problems() []string {
	var out []string
	for _, s := range r.sections {
		for _, p := range s.problems {
			out = append(out, fmt.Sprintf("scenario %s: %s", s.id, p))
		}
	}
	return out
}

func (r *report) write() error {
	if err := os.MkdirAll(r.cfg.out, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	cfg := r.cfg
	command := "go run ./bench"
	if cfg.quick {
		command += " -quick"
	}
	fmt.Fprintf(&b, "# Benchmark results\n\nMade by `%s` on %s, in %s.\n\n", command, r.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(r.started).Round(time.Second))
	pinning := "not pinned: Caddy or nginx, the backends and the load generator share every CPU"
	if cfg.proxyCPUs != "" {
		pinning = "the proxy pinned to CPUs " + cfg.proxyCPUs + " with taskset; the backends and the load generator unpinned"
	}
	procs := fmt.Sprintf("Go's default GOMAXPROCS (%d here)", runtime.NumCPU())
	if cfg.proxyCPUs != "" {
		procs = "Go's default GOMAXPROCS, which follows the pinned CPUs"
	}
	fmt.Fprintf(&b, "## Configuration\n\n- Machine: %s.\n- Pinning: %s. Caddy runs with %s; nginx with one worker.\n", machine(), pinning, procs)
	fmt.Fprintf(&b, "- Repetitions: %d of every measurement, interleaved (A B C A B C …); each cell is the median. Each run starts a fresh server, warms it up for %s, then measures for %s.\n", cfg.reps, cfg.warmup, cfg.phase)
	fmt.Fprintf(&b, "- Backends, on loopback in two child processes, the primary in one and the shadows in the other (so that a shadow holding a thousand connections slows neither the load generator nor the primary through their process's scheduler or garbage collector): a primary that reads the body and answers after %s, and shadows that are fast, slow (200 ms), hanging, refusing or resetting.\n", cfg.primaryDelay)
	b.WriteString("- Load: open loop (a fixed rate, latency from when each request was due, as wrk2 does) for latency; closed loop (back to back) for peak throughput. Percentiles from HdrHistogram.\n")
	b.WriteString("- CPU is the proxy's user plus system time and RSS its VmRSS/VmHWM, from /proc, not from inside the process.\n")
	if cfg.nginx != "" {
		fmt.Fprintf(&b, "- nginx: %s, `mirror` with `mirror_request_body on`, keep-alive upstreams, 10 s mirror timeouts like Caddy's default.\n", nginxVersion(cfg.nginx))
	} else {
		b.WriteString("- nginx: not installed, so not measured.\n")
	}
	b.WriteString("\nEvery ratio is to a baseline measured in the same run; the absolute value stands beside it.\n")
	b.WriteString(noiseNote)
	for _, s := range r.sections {
		fmt.Fprintf(&b, "\n## %s. %s\n\n%s\n\nTarget: %s\n\n", s.id, s.title, s.setup, s.target)
		for _, t := range s.tables {
			b.WriteString(t + "\n")
		}
		for _, v := range s.verdicts {
			b.WriteString("- " + v + "\n")
		}
		for _, p := range s.problems {
			b.WriteString("- PROBLEM: " + p + "\n")
		}
	}
	if err := writeCharts(r.cfg.out, r.sections); err != nil {
		return fmt.Errorf("drawing charts: %v", err)
	}
	b.WriteString("\n## Charts\n\n![Latency percentiles per scenario](latency.png)\n\n![RSS and goroutines over time](memory.png)\n")
	return os.WriteFile(filepath.Join(r.cfg.out, "RESULTS.md"), []byte(b.String()), 0o644)
}

// noiseNote tells how to read small ratios on a shared machine.
const noiseNote = `
On a shared 2-core machine the noise between runs is large: a p99 at one
connection moves by ±25% from run to run (scenario 4's percent 0 variant
costs 12 ns and no allocation per request in scenario 7, yet its p99 has read
anywhere from 0.95 to 1.23 of the baseline), and saturated throughput by
±5%. Read a ratio within that band as no difference.
`

func nginxVersion(path string) string {
	out, err := runOutput(path, "-v")
	if err != nil {
		return "nginx"
	}
	return strings.TrimSpace(strings.TrimPrefix(out, "nginx version: "))
}
