package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
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
	rows := [][]string{}
	for _, v := range variants {
		m := res[v.name][0]
		rows = append(rows, []string{v.name, fmt.Sprintf("%.0f", m.rps()), mib(m.peakRSS),
			mib(rssAt(m, 0.25)), mib(rssAt(m, 0.5)), mib(rssAt(m, 1)),
			dash(m.peak(func(s sample) float64 { return s.goroutines }), "%.0f"), fmt.Sprint(m.errors), outcomesCell(res[v.name])})
	}
	sec.tables = append(sec.tables, mdTable([]string{"variant", "uploads/s", "peak RSS", "RSS at 1/4", "RSS at 1/2", "RSS at end", "peak goroutines", "errors", "mirror outcomes"}, rows))
	extra := mir.peakRSS - base.peakRSS
	sec.verdict(extra <= 300<<20, "peak RSS %s above the baseline's (limit 300 MiB)", mib(extra))
	// Copies time out in waves (every 10 s the held ones give way to new
	// ones), so RSS is a saw; flat means its peaks do not climb.
	first, second := peakRSS(mir, 0, 0.5), peakRSS(mir, 0.5, 1)
	sec.verdict(float64(second) <= float64(first)*1.1+float64(16<<20), "highest RSS in the second half of the run %s vs %s in the first (flat: within 10%% + 16 MiB)", mib(second), mib(first))
	sec.memory = []memorySeries{{name: variants[0].name, samples: base.samples}, {name: variants[1].name, samples: mir.samples}}
	sec.problems = res.problems(variants)
	return []section{sec}, nil
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
var benchLine = regexp.MustCompile(`^BenchmarkServeHTTP/(\S+?)-\d+\s+\d+\s+([\d.]+) ns/op.*?\s([\d.]+) B/op\s+(\d+) allocs/op`)

func allocations(cfg *config, _ *environment) ([]section, error) {
	benchtime := "20000x"
	if cfg.quick {
		benchtime = "500x"
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "BenchmarkServeHTTP", "-benchmem", "-benchtime", benchtime, ".")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -bench: %v", err)
	}
	sec := section{
		id: "7", title: "Allocations",
		setup:  fmt.Sprintf("`go test -run '^$' -bench BenchmarkServeHTTP -benchmem -benchtime %s .` on the handler alone, with an in-process primary and, for mirrored requests, a loopback shadow in the same process (so its bytes and allocations are counted too).", benchtime),
		target: "Zero extra allocations for a request that is not sampled.",
	}
	rows := [][]string{}
	allocs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := benchLine.FindStringSubmatch(sc.Text()); m != nil {
			rows = append(rows, []string{m[1], m[2], m[3], m[4]})
			allocs[m[1]] = m[4]
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no benchmark results in:\n%s", out)
	}
	sec.tables = append(sec.tables, mdTable([]string{"request", "ns/op", "B/op", "allocs/op"}, rows))
	for _, name := range []string{"passthrough/not_sampled", "passthrough/not_matched"} {
		sec.verdict(allocs[name] == "0", "%s: %s allocs/op", name, allocs[name])
	}
	return []section{sec}, nil
}
