package main

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// scenario is one numbered scenario of the suite.
type scenario struct {
	id, title string
	run       func(cfg *config, env *environment) ([]section, error)
}

// The scenarios, in the order the issue that asked for them numbers them.
// Scenario 3 (copy cost) is read from scenario 2's runs.
var allScenarios = []scenario{
	{"1", "unsaturated isolation", unsaturatedIsolation},
	{"2", "saturated isolation and copy cost", saturatedIsolation},
	{"4", "mirror configured but not copying", notCopying},
	{"5", "large uploads", largeUploads},
	{"6", "memory bound", memoryBound},
	{"7", "allocations", allocations},
	{"8", "comparison cost", comparisonCost},
	{"9", "streamed uploads", streamedUploads},
	{"10", "adaptive concurrency transitions", adaptiveTransitions},
	{"11", "two targets, one hanging", twoTargets},
	{"12", "peak RSS with streamed uploads", streamedMemory},
	{"13", "fidelity: every copy to a healthy shadow", fidelity},
	{"14", "a pool with a hanging or a refusing replica", poolIsolation},
}

func ptr[T any](v T) *T { return &v }

// misbehaving are the shadows the isolation scenarios put behind the mirror.
var misbehaving = []string{shadowSlow, shadowHanging, shadowRefusing, shadowResetting}

// withNginx adds, when nginx is in use, the same variants served by nginx.
func withNginx(cfg *config, variants []variant) []variant {
	if cfg.nginx == "" {
		return variants
	}
	out := slices.Clone(variants)
	for _, v := range variants {
		out = append(out, variant{name: strings.Replace(v.name, "caddy", "nginx", 1), server: "nginx", mirror: v.mirror})
	}
	return out
}

// nginxStallers are the shadows whose copies hold each of nginx's clients
// until the copy is answered or nginx's 10 s timeout passes.
var nginxStallers = []string{shadowSlow, shadowHanging, shadowTrickle}

// forQuick returns the variants, less, with -quick, nginx's mirror to a
// shadow that stalls it: those runs take 10 to 20 s each to drain, show
// only what the full run shows (nginx waits for its copies), and the
// smoke test judges Caddy alone. nginx's other variants still run.
func forQuick(cfg *config, variants []variant) []variant {
	if !cfg.quick {
		return variants
	}
	return slices.DeleteFunc(slices.Clone(variants), func(v variant) bool {
		return v.server == "nginx" && v.mirror != nil && slices.Contains(nginxStallers, v.mirror.shadow)
	})
}

func mirrorTo(shadow string) *mirrorConfig { return &mirrorConfig{shadow: shadow} }

var caddyBaseline = variant{name: "caddy reverse_proxy", server: "caddy"}

// baselineOf returns the name of the variant's baseline, on its own server.
func baselineOf(v variant) string {
	if v.server == "nginx" {
		return "nginx proxy_pass"
	}
	return caddyBaseline.name
}

// capacity measures the baseline's closed-loop throughput on one
// keep-alive connection, once per run.
func capacity(cfg *config, env *environment) (float64, error) {
	if env.capacity > 0 {
		return env.capacity, nil
	}
	res, err := interleave(cfg, env, []variant{caddyBaseline}, func(variant) phase {
		return phase{conns: 1, method: http.MethodGet, duration: cfg.phase}
	}, time.Second)
	if err != nil {
		return 0, err
	}
	env.capacity = median(res[caddyBaseline.name], rps)
	return env.capacity, nil
}

// cpuTable shows where the CPU went during each Caddy variant's phase: in
// Caddy and in the backends (the primary and the shadows), which share the
// same cores, as shares of one core.
func cpuTable(res results, variants []variant, baseline func(variant) string) string {
	caddyCPU := cpuShare(func(m measurement) time.Duration { return m.cpu })
	backCPU := cpuShare(func(m measurement) time.Duration { return m.backCPU })
	rows := [][]string{}
	for _, v := range variants {
		if v.server != "caddy" {
			continue
		}
		ms, base := res[v.name], res[baseline(v)]
		sum := func(m measurement) float64 { return caddyCPU(m) + backCPU(m) }
		peakOpen := median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return float64(s.shadowOpen) }) })
		peakG := median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return s.goroutines }) })
		rows = append(rows, []string{v.name,
			ratioCell(median(ms, caddyCPU), median(base, caddyCPU), "%.2f"),
			ratioCell(median(ms, backCPU), median(base, backCPU), "%.2f"),
			ratioCell(median(ms, sum), median(base, sum), "%.2f"),
			fmt.Sprintf("%.0f", peakOpen), dash(peakG, "%.0f")})
	}
	return mdTable([]string{"variant", "Caddy CPU, cores (ratio)", "backends CPU, cores (ratio)", "both (ratio)", "peak sockets to shadow", "peak goroutines"}, rows)
}

// renameNginxBaseline names nginx's plain variant after what it runs.
func renameNginxBaseline(variants []variant) []variant {
	for i, v := range variants {
		if v.server == "nginx" && v.mirror == nil {
			variants[i].name = "nginx proxy_pass"
		}
	}
	return variants
}

func saturatedIsolation(cfg *config, env *environment) ([]section, error) {
	variants := []variant{caddyBaseline, {name: "caddy mirror, fast shadow", server: "caddy", mirror: mirrorTo(shadowFast)}}
	for _, kind := range misbehaving {
		variants = append(variants, variant{name: "caddy mirror, " + kind + " shadow", server: "caddy", mirror: mirrorTo(kind)})
	}
	variants = forQuick(cfg, renameNginxBaseline(withNginx(cfg, variants)))
	// each copy sent after the primary's response (wait_for_primary):
	// what waiting for the primary costs at saturation
	variants = append(variants, variant{name: "caddy mirror, fast shadow, after the primary", server: "caddy", mirror: &mirrorConfig{shadow: shadowFast, afterPrimary: true}})
	res, err := interleave(cfg, env, variants, func(variant) phase {
		return phase{conns: 16, method: http.MethodGet, duration: cfg.phase}
	}, 250*time.Millisecond)
	if err != nil {
		return nil, err
	}
	fastOf := func(v variant) string { return strings.SplitN(v.name, " ", 2)[0] + " mirror, fast shadow" }
	sec := section{
		id: "2", title: "Saturated isolation",
		setup:  "16 keep-alive connections, closed loop, GET, every request mirrored. Ratios are to the same server's mirror with a fast shadow.",
		target: "Throughput ≥ 0.95 of the fast-shadow mirror; a slow shadow costs no more connections, goroutines or CPU than its in-flight copies need.",
	}
	rows := [][]string{}
	for _, v := range variants {
		ms, fast := res[v.name], res[fastOf(v)]
		row := []string{v.name, ratioCell(median(ms, rps), median(fast, rps), "%.0f"), fmt.Sprintf("%.2f", median(ms, p99)),
			ratioCell(median(ms, cpuPer1kMs), median(fast, cpuPer1kMs), "%.0f")}
		peakOpen := median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return float64(s.shadowOpen) }) })
		peakTW := median(ms, func(m measurement) float64 { return m.timeWaitAdded() })
		peakG := median(ms, func(m measurement) float64 { return m.peak(func(s sample) float64 { return s.goroutines }) })
		row = append(row, fmt.Sprintf("%.0f", peakOpen), fmt.Sprintf("%.0f", peakTW), dash(peakG, "%.0f"), fmt.Sprintf("%.0f", median(ms, errs)), outcomesCell(ms))
		rows = append(rows, row)
	}
	sec.tables = append(sec.tables, mdTable([]string{"variant", "req/s (ratio)", "p99 ms", "CPU ms per 1k req (ratio)", "peak sockets to shadow", "TIME_WAIT added", "peak goroutines", "errors", "mirror outcomes"}, rows),
		"Where the two cores went (ratios to the fast-shadow mirror):\n\n"+cpuTable(res, variants, fastOf))
	for _, v := range variants {
		if v.server == "caddy" && v.mirror != nil && v.mirror.shadow != shadowFast {
			thr := median(res[v.name], rps) / median(res[fastOf(v)], rps)
			sec.verdict(thr >= 0.95, "%s: throughput %.3f of the fast-shadow mirror", v.name, thr)
		}
	}
	sec.latency = chartOf(res, variants)
	sec.problems = res.problems(variants)

	return []section{sec, copyCost(cfg, res)}, nil
}

// copyCost is scenario 3, read from scenario 2's baseline and fast-shadow
// runs.
func copyCost(cfg *config, res results) section {
	sec := section{
		id: "3", title: "Copy cost, fast shadow at 100%",
		setup: "Scenario 2's runs: the same server with no mirror and with every request mirrored to a fast shadow. " +
			"A copy is one more HTTP/1.1 exchange over loopback, made by Go's net/http client: the read and write system calls " +
			"(from /proc/<pid>/io) and context switches (from /proc/<pid>/task/*/status) per request show the kernel's share of it.",
		target: "Caddy's CPU time per request ≤ 1.3 times the baseline's.",
	}
	servers := []string{"caddy"}
	if cfg.nginx != "" {
		servers = append(servers, "nginx")
	}
	syscalls := perRequest(func(m measurement) int64 { return m.syscalls })
	switches := perRequest(func(m measurement) int64 { return m.switches })
	rows := [][]string{}
	for _, server := range servers {
		base := res[baselineOf(variant{server: server})]
		mirrored := res[server+" mirror, fast shadow"]
		cpu := median(mirrored, cpuPer1kMs) / median(base, cpuPer1kMs)
		rows = append(rows, []string{server,
			fmt.Sprintf("%.0f", median(base, rps)), ratioCell(median(mirrored, rps), median(base, rps), "%.0f"),
			fmt.Sprintf("%.0f", median(base, cpuPer1kMs)), ratioCell(median(mirrored, cpuPer1kMs), median(base, cpuPer1kMs), "%.0f"),
			fmt.Sprintf("%.1f", median(base, syscalls)), ratioCell(median(mirrored, syscalls), median(base, syscalls), "%.1f"),
			fmt.Sprintf("%.2f", median(base, switches)), ratioCell(median(mirrored, switches), median(base, switches), "%.2f")})
		if server == "caddy" {
			sec.verdict(cpu <= 1.3, "caddy: CPU per request %.2f times the baseline's", cpu)
		}
	}
	sec.tables = append(sec.tables, mdTable([]string{"server", "baseline req/s", "mirrored req/s (ratio)", "baseline CPU ms per 1k req", "mirrored CPU ms per 1k req (ratio)",
		"baseline read+write syscalls per req", "mirrored (ratio)", "baseline context switches per req", "mirrored (ratio)"}, rows))
	return sec
}

func notCopying(cfg *config, env *environment) ([]section, error) {
	c, err := capacity(cfg, env)
	if err != nil {
		return nil, err
	}
	variants := []variant{
		caddyBaseline,
		{name: "caddy mirror, percent 0", server: "caddy", mirror: &mirrorConfig{shadow: shadowFast, percent: ptr(0.0)}},
		{name: "caddy mirror, no match", server: "caddy", mirror: &mirrorConfig{shadow: shadowFast, matchHeader: true}},
	}
	// The differences this scenario looks for are far below the machine's
	// noise, so it takes more repetitions than the others.
	more := *cfg
	if !cfg.quick {
		more.reps = max(cfg.reps, 5)
	}
	closed, err := interleave(&more, env, variants, func(variant) phase {
		return phase{conns: 16, method: http.MethodGet, duration: cfg.phase}
	}, time.Second)
	if err != nil {
		return nil, err
	}
	open, err := interleave(&more, env, variants, func(variant) phase {
		return phase{open: true, rate: c / 2, conns: 1, method: http.MethodGet, duration: cfg.phase}
	}, time.Second)
	if err != nil {
		return nil, err
	}
	sec := section{
		id: "4", title: "Mirror configured but not copying",
		setup:  fmt.Sprintf("Throughput: 16 connections, closed loop. p99: one connection, open loop at %.0f req/s. GET. %d repetitions of each.", c/2, more.reps),
		target: "Throughput ≥ 0.98, p99 ≤ 1.05 of the baseline.",
	}
	rows := [][]string{}
	base := caddyBaseline.name
	for _, v := range variants {
		rows = append(rows, []string{v.name,
			ratioCell(median(closed[v.name], rps), median(closed[base], rps), "%.0f"),
			ratioCell(median(open[v.name], p99), median(open[base], p99), "%.2f"),
			fmt.Sprintf("%.0f", median(closed[v.name], cpuPer1kMs))})
		if v.mirror != nil {
			thr := median(closed[v.name], rps) / median(closed[base], rps)
			r99 := median(open[v.name], p99) / median(open[base], p99)
			sec.verdict(thr >= 0.98 && r99 <= 1.05, "%s: throughput %.3f, p99 %.2f of the baseline", v.name, thr, r99)
		}
	}
	sec.tables = append(sec.tables, mdTable([]string{"variant", "req/s, 16 conns (ratio)", "p99 ms, 1 conn open loop (ratio)", "CPU ms per 1k req"}, rows))
	sec.problems = append(closed.problems(variants), open.problems(variants)...)
	return []section{sec}, nil
}

func largeUploads(cfg *config, env *environment) ([]section, error) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	variants := []variant{
		caddyBaseline,
		{name: "caddy mirror, max_body_size 16MiB", server: "caddy", mirror: &mirrorConfig{shadow: shadowFast, maxBodySize: 16 << 20}},
		{name: "caddy mirror, max_body_size 1MiB, large_bodies skip", server: "caddy", mirror: &mirrorConfig{shadow: shadowFast, maxBodySize: 1 << 20, largeBodies: "skip"}},
	}
	if cfg.nginx != "" {
		variants = append(variants, variant{name: "nginx proxy_pass", server: "nginx"},
			variant{name: "nginx mirror, mirror_request_body on", server: "nginx", mirror: mirrorTo(shadowFast)})
	}
	res, err := interleave(cfg, env, variants, func(variant) phase {
		return phase{conns: 1, method: http.MethodPost, body: body, duration: cfg.phase}
	}, time.Second)
	if err != nil {
		return nil, err
	}
	sec := section{
		id: "5", title: "Large uploads",
		setup:  "8 MiB POST bodies, one connection, back to back. The copy is buffered and sent with max_body_size 16MiB, and skipped with 1MiB and large_bodies skip (scenario 9 streams it).",
		target: "Primary latency ≤ 1.1 times the baseline's: no read-ahead before the primary.",
	}
	sec.tables = append(sec.tables, latencyTable(res, variants, baselineOf))
	cpuRows := [][]string{}
	for _, v := range variants {
		cpuRows = append(cpuRows, []string{v.name, ratioCell(median(res[v.name], cpuPer1kMs)/1000, median(res[baselineOf(v)], cpuPer1kMs)/1000, "%.2f")})
	}
	sec.tables = append(sec.tables, mdTable([]string{"variant", "proxy CPU ms per upload (ratio)"}, cpuRows))
	for _, v := range variants {
		if v.server == "caddy" && v.mirror != nil {
			r := median(res[v.name], p50) / median(res[caddyBaseline.name], p50)
			sec.verdict(r <= 1.1, "%s: p50 latency %.2f of the baseline", v.name, r)
		}
	}
	sec.latency = chartOf(res, variants)
	sec.problems = res.problems(variants)
	return []section{sec}, nil
}

// streamedUploads sends bodies over max_body_size, streamed to a fast
// shadow and to one reading 1 MiB/s, against no mirror.
func streamedUploads(cfg *config, env *environment) ([]section, error) {
	sec := section{
		id: "9", title: "Streamed uploads",
		setup: "POST bodies of 8 MiB and 256 MiB, one connection, back to back, with the default max_body_size (1 MiB) and stream_window (4 MiB): " +
			"the copy is streamed as the primary reads the body, to a fast shadow or to one that reads 1 MiB/s (an 8 MiB copy mostly fits in its window and the sockets' buffers, so it stays in flight for seconds and the concurrency limit drops the next ones, dropped_concurrency; a 256 MiB one falls a window behind and is cut off, cut_off_slow). " +
			"nginx, when installed, runs the same uploads beside it: proxy_pass reads the whole body to a file before it sends it to the primary, " +
			"and so does the mirror with mirror_request_body on, which then holds the client's keep-alive connection until the copy has been sent and answered " +
			"(10 s timeouts), so that the next upload on it waits: at 1 MiB/s that is the whole body's size in seconds. " +
			"An upload still waiting " + drainTimeout.String() + " after the phase ends (the drain) is cancelled by the load generator and not counted, so nginx's p50 there is that of the few that completed: read its req/s.",
		target: "Upload p50 ≤ 1.3 times the baseline's with a fast shadow, ≤ 1.05 with a slow one (Caddy's variants; nginx's are measured, not judged).",
	}
	for _, size := range []int{8 << 20, 256 << 20} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		variants := []variant{
			caddyBaseline,
			{name: fmt.Sprintf("caddy mirror, %d MiB streamed, fast shadow", size>>20), server: "caddy", mirror: mirrorTo(shadowFast)},
			{name: fmt.Sprintf("caddy mirror, %d MiB streamed, 1 MiB/s shadow", size>>20), server: "caddy", mirror: mirrorTo(shadowTrickle)},
		}
		if cfg.nginx != "" {
			variants = append(variants, variant{name: "nginx proxy_pass", server: "nginx"},
				variant{name: fmt.Sprintf("nginx mirror, %d MiB, fast shadow", size>>20), server: "nginx", mirror: mirrorTo(shadowFast)},
				variant{name: fmt.Sprintf("nginx mirror, %d MiB, 1 MiB/s shadow", size>>20), server: "nginx", mirror: mirrorTo(shadowTrickle)})
		}
		variants = forQuick(cfg, variants)
		res, err := interleave(cfg, env, variants, func(variant) phase {
			return phase{conns: 1, method: http.MethodPost, body: body, duration: cfg.phase}
		}, time.Second)
		if err != nil {
			return nil, err
		}
		sec.tables = append(sec.tables, latencyTable(res, variants, baselineOf))
		cpuRows := [][]string{}
		for _, v := range variants {
			cpuRows = append(cpuRows, []string{v.name, ratioCell(median(res[v.name], cpuPer1kMs)/1000, median(res[baselineOf(v)], cpuPer1kMs)/1000, "%.2f")})
		}
		sec.tables = append(sec.tables, mdTable([]string{"variant", "proxy CPU ms per upload (ratio)"}, cpuRows))
		for _, v := range variants[1:] {
			if v.server != "caddy" {
				continue
			}
			limit := 1.3
			if v.mirror.shadow == shadowTrickle {
				limit = 1.05
			}
			r := median(res[v.name], p50) / median(res[caddyBaseline.name], p50)
			sec.verdict(r <= limit, "%s: p50 latency %.2f of the baseline", v.name, r)
		}
		sec.problems = append(sec.problems, res.problems(variants)...)
	}
	return []section{sec}, nil
}
