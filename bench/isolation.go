package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Scenario 1 measures what a mirror costs the primary's latency when the
// proxy is not saturated, with each kind of shadow behind it. Its tail
// rests on few samples and moves with the machine, so each repetition
// measures the baseline twice, first and last, and every ratio is to the
// mean of the two; the load generator runs in a process of its own.

// The baseline's two runs in each of scenario 1's repetitions.
const (
	baselineFirst = "caddy reverse_proxy (first run)"
	baselineLast  = "caddy reverse_proxy (last run)"
)

// hostileShadows are the shadows that answer in ways meant to cost the
// mirror memory, goroutines or CPU rather than time.
var hostileShadows = []string{shadowTLSHang, shadowHeaderBomb, shadowCompareBombJSON, shadowCompareBombZstd}

// suspectRatio is the ratio to the baseline below which a measurement is
// suspect: a mirror does not make the primary faster.
const suspectRatio = 0.8

// settleWithin bounds how long scenario 1 waits after each Caddy
// variant's load for its copies to end: the mirror's 10 s timeout and
// some.
func settleWithin(cfg *config) time.Duration {
	if cfg.quick {
		return time.Second
	}
	return 12 * time.Second
}

// isolationVariants are scenario 1's variants, the baseline first: the
// fast shadow, the misbehaving ones (beside nginx's), the hanging shadow
// with a small max_in_flight, compared fast and slow shadows, and the
// hostile shadows, each without and with compare.
func isolationVariants(cfg *config) []variant {
	variants := []variant{caddyBaseline}
	for _, kind := range misbehaving {
		variants = append(variants, variant{name: "caddy mirror, " + kind + " shadow", server: "caddy", mirror: mirrorTo(kind)})
	}
	variants = forQuick(cfg, renameNginxBaseline(withNginx(cfg, variants)))
	fast := variant{name: "caddy mirror, fast shadow", server: "caddy", mirror: mirrorTo(shadowFast)}
	variants = append([]variant{caddyBaseline, fast}, variants[1:]...)
	// How much of a hung shadow's cost is the copies it holds: the same
	// shadow with a sixteenth of the default in-flight limit.
	variants = append(variants, variant{name: "caddy mirror, hanging shadow, max_in_flight 64", server: "caddy",
		mirror: &mirrorConfig{shadow: shadowHanging, maxInFlight: 64}})
	// The same shadows with each copy sent after the primary's response
	// rather than beside it (wait_for_primary; issue 23).
	for _, kind := range []string{shadowFast, shadowSlow} {
		variants = append(variants, variant{name: "caddy mirror, " + kind + " shadow, after the primary", server: "caddy",
			mirror: &mirrorConfig{shadow: kind, afterPrimary: true}})
	}
	// The slow shadow over h2c, its copies multiplexed on one connection
	// instead of one each: what the copies in flight cost the primary's
	// Caddy with one connection's goroutines instead of 190 connections'.
	variants = append(variants, variant{name: "caddy mirror, slow shadow over h2c", server: "caddy", mirror: mirrorTo(shadowSlowH2C)})
	// The controls: the same copies to the fast and the slow shadow, sent
	// from a process beside Caddy, which does not mirror (besideload.go).
	for _, kind := range []string{shadowFast, shadowSlow} {
		variants = append(variants, besideVariant(kind))
	}
	// Comparing each shadow response with the primary's must not cost the
	// client either: it happens in the mirror's goroutines.
	for _, kind := range []string{shadowFast, shadowSlow} {
		variants = append(variants, variant{name: "caddy mirror, " + kind + " shadow, compared", server: "caddy",
			mirror: &mirrorConfig{shadow: kind, compare: true}})
	}
	for _, kind := range hostileShadows {
		for _, compare := range []bool{false, true} {
			v := variant{name: "caddy mirror, " + kind + " shadow", server: "caddy",
				mirror: &mirrorConfig{shadow: kind, compare: compare, https: kind == shadowTLSHang}}
			if compare {
				v.name += ", compared"
			}
			variants = append(variants, v)
		}
	}
	return keepOnly(cfg.isolation.only, variants)
}

// keepOnly returns the baseline (variants[0]) and the variants named
// "caddy mirror, " or "caddy reverse_proxy, " and one of names, or every
// variant when names is empty.
func keepOnly(names []string, variants []variant) []variant {
	if len(names) == 0 {
		return variants
	}
	kept := []variant{variants[0]}
	for _, v := range variants[1:] {
		for _, name := range names {
			if v.name == "caddy mirror, "+strings.TrimSpace(name) || v.name == "caddy reverse_proxy, "+strings.TrimSpace(name) {
				kept = append(kept, v)
				break
			}
		}
	}
	return kept
}

// isolationWarmup is scenario 1's warm-up by default: a fresh mirror's
// limit learns a 200 ms shadow at 1,000 copies a second in about 0.5 s,
// and the connections beyond its need that its first queue opened close
// a second after (the transport's idle_timeout). With the bench's usual
// 0.5 s, the slow shadow's tail fell in the first 1.5 s of the phase.
const isolationWarmup = 2 * time.Second

// isolationPhase is scenario 1's load for v: one connection, open loop
// at rate, from a load generator process; the JSON compare bomb's
// variants ask for the primary's JSON document, which its numbers are
// compared with.
func isolationPhase(cfg *config, rate float64, v variant) phase {
	ph := phase{open: true, rate: rate, conns: 1, method: http.MethodGet, duration: cfg.isolation.phase,
		ownProcess: true, settle: settleWithin(cfg), warmup: cfg.isolation.warmup}
	if v.mirror != nil && v.mirror.shadow == shadowCompareBombJSON {
		ph.path, ph.want = primaryJSONPath, primaryJSON
	}
	return ph
}

// interleaveBracketed measures the variants in interleaved repetitions,
// as interleave does, with the baseline (variants[0]) measured first and
// again last in each: its runs are under baselineFirst and baselineLast,
// and both under its own name too.
func interleaveBracketed(cfg *config, env *environment, variants []variant, phaseOf func(variant) phase, sampleEvery time.Duration) (results, error) {
	res := results{}
	base := variants[0]
	for rep := range cfg.isolation.reps {
		order := append([]variant{{name: baselineFirst, server: base.server}}, variants[1:]...)
		order = append(order, variant{name: baselineLast, server: base.server})
		for _, v := range order {
			m, err := measureLogged(cfg, env, v, phaseOf(v), sampleEvery, rep)
			if err != nil {
				return nil, err
			}
			res[v.name] = append(res[v.name], m)
		}
	}
	res[base.name] = append(append([]measurement(nil), res[baselineFirst]...), res[baselineLast]...)
	return res, nil
}

// unsaturatedIsolation is scenario 1.
func unsaturatedIsolation(cfg *config, env *environment) ([]section, error) {
	c, err := capacity(cfg, env)
	if err != nil {
		return nil, err
	}
	rate := c / 2
	variants := isolationVariants(cfg)
	res, err := interleaveBracketed(cfg, env, variants, func(v variant) phase { return isolationPhase(cfg, rate, v) }, time.Second)
	if err != nil {
		return nil, err
	}
	runs := isolationRuns{res: res, reps: cfg.isolation.reps}
	sec := section{
		id: "1", title: "Unsaturated isolation",
		setup: fmt.Sprintf("One keep-alive connection, open loop at %.0f req/s (half the baseline's measured capacity of %.0f req/s on one connection), GET, every request mirrored, "+
			"%d interleaved repetitions of %s each, each run warmed up for %s at the same rate. Latency is measured from when each request was due, by a load generator in a process of its own "+
			"(neither this program, which starts and samples the proxy, nor the backends' children: the primary in one, the shadows in another). "+
			"In each repetition the baseline, Caddy's reverse_proxy with no mirror, runs first and again last, and each ratio is to the mean of those two runs; "+
			"the table below the first shows how far the baseline's two runs, and its repetitions, differ from each other: a ratio within that spread is no difference. "+
			"The hostile shadows: tls-hang accepts connections and never completes a TLS handshake (the target is an https:// upstream, its certificate not verified); "+
			"header-bomb answers ~9 MiB of header lines; compare-bomb-json answers %d numbers such as 1e999999 (its variants ask for the primary's JSON document on %s, which they are compared with); "+
			"compare-bomb-zstd answers an 11-byte zstd frame that declares a 512 MiB window. After each Caddy variant's load, the program waits up to %s for its copies to end and its goroutines to settle.",
			rate, c, cfg.isolation.reps, cfg.isolation.phase, cfg.isolation.warmup, compareBombNumbers, primaryJSONPath, settleWithin(cfg)),
		target: "Throughput ≥ 0.95, p50 and p99 ≤ 1.2 of the baseline, zero primary errors, every copy counted; the baseline's own spread small enough to see a 10% change.",
	}
	sec.tables = append(sec.tables, runs.latencyTable(variants), runs.baselineTable(), runs.resourceTable(variants), runs.windowsTable(variants), runs.settledTable(variants))
	sec.tables = append(sec.tables, runs.warnings(variants)...)
	runs.verdicts(&sec, variants)
	sec.latency = chartOf(res, variants)
	sec.problems = res.problems(variants) // the baseline's name holds both its runs
	return []section{sec}, nil
}
