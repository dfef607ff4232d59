package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

func memoryBound(cfg *config, env *environment) ([]section, error) {
	body := bytes.Repeat([]byte("m"), 1<<20)
	variants := []variant{
		caddyBaseline,
		{name: "caddy mirror, hanging shadow", server: "caddy", mirror: &mirrorConfig{shadow: shadowHanging, maxInFlight: 256, maxBodySize: 1 << 20}},
	}
	// One long run each: the point is the shape of RSS over time.
	one := *cfg
	one.reps = 1
	res, err := interleave(&one, env, variants, func(variant) phase {
		return phase{conns: 64, method: http.MethodPost, body: body, duration: cfg.memoryPhase}
	}, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	sec := section{
		id: "6", title: "Memory bound",
		setup:  fmt.Sprintf("A hanging shadow, 64 concurrent uploaders of 1 MiB bodies, closed loop, max_in_flight 256, max_body_size 1MiB, for %s. RSS (VmRSS, VmHWM) from /proc; goroutines from Caddy's go_goroutines.", cfg.memoryPhase),
		target: "Peak RSS ≤ the baseline's + 300 MiB, flat after the first seconds; goroutines flat.",
	}
	base, mir := res[variants[0].name][0], res[variants[1].name][0]
	sec.memoryTable(res, variants)
	extra := mir.peakRSS - base.peakRSS
	sec.verdict(extra <= 300<<20, "peak RSS %s above the baseline's (limit 300 MiB)", mib(extra))
	sec.flatVerdict(mir)
	sec.problems = res.problems(variants)
	return []section{sec}, nil
}

// memoryTable adds the table of a memory scenario, one long run per
// variant, and its series to the memory chart.
func (s *section) memoryTable(res results, variants []variant) {
	rows := [][]string{}
	for _, v := range variants {
		m := res[v.name][0]
		rows = append(rows, []string{v.name, fmt.Sprintf("%.1f", m.rps()), fmt.Sprintf("%.0f", m.quantileMs(50)), mib(m.peakRSS),
			mib(rssAt(m, 0.25)), mib(rssAt(m, 0.5)), mib(rssAt(m, 1)),
			dash(m.peak(func(s sample) float64 { return s.goroutines }), "%.0f"), fmt.Sprint(m.errors), outcomesCell(res[v.name])})
		s.memory = append(s.memory, memorySeries{name: v.name, samples: m.samples})
	}
	s.tables = append(s.tables, mdTable([]string{"variant", "uploads/s", "p50 upload ms", "peak RSS", "RSS at 1/4", "RSS at 1/2", "RSS at end", "peak goroutines", "errors", "mirror outcomes"}, rows))
}

// flatVerdict judges whether the run's RSS stayed flat. Copies time out
// or are cut off in waves, so RSS is a saw; flat means its peaks do not
// climb: the second half's highest within 10% + 16 MiB of the first's.
func (s *section) flatVerdict(m measurement) {
	first, second := peakRSS(m, 0, 0.5), peakRSS(m, 0.5, 1)
	s.verdict(float64(second) <= float64(first)*1.1+float64(16<<20), "highest RSS in the second half of the run %s vs %s in the first (flat: within 10%% + 16 MiB)", mib(second), mib(first))
}

// rssAt returns the RSS sampled at the given fraction of the run.
func rssAt(m measurement, frac float64) int64 {
	if len(m.samples) == 0 {
		return 0
	}
	i := min(len(m.samples)-1, int(frac*float64(len(m.samples)-1)))
	return m.samples[i].rss
}

// peakRSS returns the highest RSS sampled between two fractions of the run.
func peakRSS(m measurement, from, to float64) int64 {
	var p int64
	for i, s := range m.samples {
		if f := float64(i) / float64(max(1, len(m.samples)-1)); f >= from && f <= to {
			p = max(p, s.rss)
		}
	}
	return p
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// benchLine matches a line of go test -bench -benchmem output.
var benchLine = regexp.MustCompile(`^(Benchmark\w+)/(\S+?)-\d+\s+\d+\s+([\d.]+) ns/op.*?\s([\d.]+) B/op\s+(\d+) allocs/op`)

func allocations(cfg *config, _ *environment) ([]section, error) {
	benchtime := "20000x"
	if cfg.quick {
		benchtime = "500x"
	}
	rows, err := goBenchmark(cfg, ".", "BenchmarkServeHTTP", benchtime)
	if err != nil {
		return nil, err
	}
	sec := section{
		id: "7", title: "Allocations",
		setup:  fmt.Sprintf("`go test -run '^$' -bench BenchmarkServeHTTP -benchmem -benchtime %s .` on the handler alone, with an in-process primary and, for mirrored requests, a loopback shadow in the same process (so its bytes and allocations are counted too).", benchtime),
		target: "Zero extra allocations for a request that is not sampled.",
	}
	sec.tables = append(sec.tables, mdTable([]string{"request", "ns/op", "B/op", "allocs/op"}, rows))
	allocs := map[string]string{}
	for _, r := range rows {
		allocs[r[0]] = r[3]
	}
	for _, name := range []string{"passthrough/not_sampled", "passthrough/not_matched"} {
		sec.verdict(allocs[name] == "0", "%s: %s allocs/op", name, allocs[name])
	}
	return []section{sec}, nil
}

// comparisonCost measures what comparing one exchange costs the mirror
// goroutine that does it.
func comparisonCost(cfg *config, _ *environment) ([]section, error) {
	benchtime, sub := "2s", ""
	if cfg.quick {
		// the 64 KiB documents take the benchmarks' setup some 20 s to build
		benchtime, sub = "10x", "^(json_4KiB|unary_.*)$"
	}
	benchmarks := []struct{ name, variant string }{
		{"BenchmarkCompare", "JSON with a Content-Length"},
		{"BenchmarkCompareChunked", "JSON chunked, flushed every 2 KiB, capture included"},
		{"BenchmarkCompareGRPC", "gRPC unary, one message"},
	}
	var names []string
	for _, b := range benchmarks {
		names = append(names, b.name)
	}
	// one go test for the three: each run links the package's test binary
	got, err := goBenchmarks(cfg, "./compare", names, sub, benchtime)
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, b := range benchmarks {
		if len(got[b.name]) == 0 {
			return nil, fmt.Errorf("go test -bench: no results for %s", b.name)
		}
		for _, row := range got[b.name] {
			rows = append(rows, append([]string{b.variant}, row...))
		}
	}
	sec := section{
		id: "8", title: "Comparison cost",
		setup: fmt.Sprintf("`go test -run '^$' -bench 'BenchmarkCompare(Chunked|GRPC)?$' -benchmem -benchtime %s ./compare`: one exchange as a candidate's "+
			"goroutine compares it, with a noise target: the primary's JSON body parsed once, diffed with the candidate's "+
			"(one field changed) and the secondary's (one id changed), and the result recorded in the report. The chunked variant "+
			"also captures the primary's response as reverse_proxy writes a Go service's chunked body (a write and a flush per 2 KiB); "+
			"the gRPC variant compares grpc-status from the trailers and the message as bytes.", benchtime),
		target: "None: a measurement. Comparison runs off the request path, so it costs the client nothing while " +
			"a CPU is free (scenario 1's compared variants); it does cost CPU.",
	}
	if sub != "" {
		sec.setup += fmt.Sprintf(" With -quick, only the sub-benchmarks matching `%s`.", sub)
	}
	sec.tables = append(sec.tables, mdTable([]string{"exchange", "body", "ns/op", "B/op", "allocs/op"}, rows))
	return []section{sec}, nil
}

// goBenchmark runs one of the Go benchmarks of the plugin's package pkg
// and returns a row per sub-benchmark: its name, ns/op, B/op and
// allocs/op.
func goBenchmark(cfg *config, pkg, name, benchtime string) ([][]string, error) {
	rows, err := goBenchmarks(cfg, pkg, []string{name}, "", benchtime)
	return rows[name], err
}

// goBenchmarks runs the named Go benchmarks of the plugin's package pkg
// at once (those of their sub-benchmarks that sub matches; "" for all),
// with the test binary built for the run (go test otherwise), and
// returns, by benchmark, a row per sub-benchmark: its name, ns/op, B/op
// and allocs/op.
func goBenchmarks(cfg *config, pkg string, names []string, sub, benchtime string) (map[string][][]string, error) {
	pattern := "^(" + strings.Join(names, "|") + ")$"
	if sub != "" {
		pattern += "/" + sub
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-benchtime", benchtime, pkg)
	if bin := cfg.testBins[pkg]; bin != "" {
		// as go test runs it: in the package's folder
		cmd = exec.Command(bin, "-test.run", "^$", "-test.bench", pattern, "-test.benchmem", "-test.benchtime", benchtime)
		cmd.Dir = pkg
	}
	// stdout and stderr together, as go test gives a test binary's; the
	// benchmarks' own log lines are read past
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench '%s' %s: %v; its output ends:\n%s", pattern, pkg, err, out[max(0, len(out)-2000):])
	}
	rows := map[string][][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil && slices.Contains(names, m[1]) {
			rows[m[1]] = append(rows[m[1]], []string{m[2], m[3], m[4], m[5]})
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no benchmark results in:\n%s", out)
	}
	return rows, nil
}
