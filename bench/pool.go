package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenario 14 (issue 21): a target that is a pool of three replicas, one
// of them hanging or refusing connections. One connection, open loop at
// 200 req/s, every request copied; the copies must reach the two live
// replicas and the primary's tail must not move. It is measured as
// scenario 1 is: a fresh proxy per variant, the load generator in a
// process of its own, the no-mirror baseline first and last in each
// repetition.

const (
	poolRate       = 200             // requests per second
	poolPhase      = 4 * time.Second // each variant's load
	poolHanging    = "caddy mirror, pool: fast, fast-2, hanging"
	poolRefusing   = "caddy mirror, pool: fast, fast-2, refusing"
	poolLive       = "caddy mirror, pool: fast, fast-2"
	poolMinHanging = 0.90 // of the copies, mirrored by the live replicas
	poolMinRefused = 0.95
	poolMaxP99     = 1.2 // the primary's p99, over the baseline's
)

// poolVariants are scenario 14's variants, the baseline first.
func poolVariants(env *environment) []variant {
	// the variant's shadow is the replica whose sockets the observer
	// counts: the hanging or refusing one when there is one
	pool := func(name, shadow string, others ...string) variant {
		var addrs []string
		for _, kind := range others {
			addrs = append(addrs, env.shadows[kind])
		}
		return variant{name: name, server: "caddy", mirror: &mirrorConfig{shadow: shadow, replicas: addrs}}
	}
	return []variant{caddyBaseline,
		pool(poolLive, shadowFast, shadowFastAlso),
		pool(poolHanging, shadowHanging, shadowFast, shadowFastAlso),
		pool(poolRefusing, shadowRefusing, shadowFast, shadowFastAlso)}
}

// poolIsolation is scenario 14.
func poolIsolation(cfg *config, env *environment) ([]section, error) {
	variants := poolVariants(env)
	duration := poolPhase
	if cfg.quick {
		duration = cfg.isolation.phase
	}
	phaseOf := func(variant) phase {
		return phase{open: true, rate: poolRate, conns: 1, method: "GET", duration: duration, ownProcess: true, settle: settleWithin(cfg)}
	}
	res, err := interleaveBracketed(cfg, env, variants, phaseOf, time.Second)
	if err != nil {
		return nil, err
	}
	runs := isolationRuns{res: res, reps: cfg.isolation.reps}
	sec := section{
		id: "14", title: "A pool with a hanging or a refusing replica",
		setup: fmt.Sprintf("One keep-alive connection, open loop at %d req/s, GET, every request copied to one target that is a pool of three replicas "+
			"(`upstreams`, the default `lb_policy` random and passive health): two fast shadows and a hanging or a refusing one; and a pool of the two fast ones. "+
			"%d interleaved repetitions of %s each, measured as scenario 1 is, the baseline first and last in each.", poolRate, cfg.isolation.reps, duration),
		target: fmt.Sprintf("With one replica hanging, ≥ %.0f%% of copies mirrored by the two live ones and the primary's p99 ≤ %.1f× the baseline; with one refusing, ≥ %.0f%% mirrored and no primary error.",
			poolMinHanging*100, poolMaxP99, poolMinRefused*100),
	}
	sec.tables = append(sec.tables, runs.latencyTable(variants), runs.baselineTable(), poolCopiesTable(res, variants, env))
	sec.tables = append(sec.tables, runs.warnings(variants)...)
	for _, v := range variants[2:] {
		least := poolMinHanging
		if v.name == poolRefusing {
			least = poolMinRefused
		}
		share := slices.Min(mirroredShares(res[v.name]))
		sec.verdict(share >= least, "%s: the live replicas mirrored at least %.1f%% of the copies in each repetition (target ≥ %.0f%%)", v.name, share*100, least*100)
		ratio := medianOf(runs.ratios(v, p99))
		sec.verdict(ratio <= poolMaxP99, "%s: the primary's p99 is %.2f× the baseline's, median of %d repetitions (target ≤ %.1f×)", v.name, ratio, cfg.isolation.reps, poolMaxP99)
		sec.verdict(median(res[v.name], errs) == 0, "%s: no primary errors", v.name)
	}
	sec.latency = chartOf(res, variants)
	sec.problems = res.problems(variants)
	return []section{sec}, nil
}

// mirroredShares returns, for each run, the copies mirrored over those
// the mirror accounted for, the warm-up's included.
func mirroredShares(ms []measurement) []float64 {
	shares := []float64{}
	for _, m := range ms {
		if n := m.accounted(); n > 0 {
			shares = append(shares, m.outcomes["mirrored"]/n)
		}
	}
	if len(shares) == 0 {
		return []float64{0}
	}
	return shares
}

// poolCopiesTable shows, for each pool and repetition, the copies
// accounted for, the share mirrored, the copies sent to each replica and
// the other outcomes.
func poolCopiesTable(res results, variants []variant, env *environment) string {
	names := map[string]string{}
	for _, kind := range []string{shadowFast, shadowFastAlso, shadowHanging, shadowRefusing} {
		names[env.shadows[kind]] = kind
	}
	rows := [][]string{}
	for _, v := range variants[1:] {
		for rep, m := range res[v.name] {
			sent := []string{}
			for addr, n := range m.replicas {
				sent = append(sent, fmt.Sprintf("%s %.0f", names[addr], n))
			}
			slices.Sort(sent)
			rows = append(rows, []string{v.name, fmt.Sprint(rep + 1), fmt.Sprintf("%.0f", m.accounted()),
				pct(m.outcomes["mirrored"], m.accounted()), strings.Join(sent, ", "), outcomesCell([]measurement{m})})
		}
	}
	return mdTable([]string{"pool", "repetition", "copies", "mirrored", "sent to each replica", "outcomes"}, rows)
}
