package main

import (
	"math"
	"testing"
	"time"
)

// TestIsolationRatios: each repetition's ratio is to the mean of its
// baseline's first and last runs, and the baseline's drift is last over
// first.
func TestIsolationRatios(t *testing.T) {
	run := func(p99ms int64) measurement {
		m := measurement{load: load{latency: newLatencyHistogram(), completed: 100, elapsed: time.Second}}
		for range 100 {
			_ = m.latency.RecordValue(p99ms * 1000)
		}
		return m
	}
	ir := isolationRuns{reps: 2, res: results{
		baselineFirst: {run(4), run(10)},
		baselineLast:  {run(6), run(10)},
		"v":           {run(10), run(5)},
	}}
	got := ir.ratios(variant{name: "v", server: "caddy"}, p99)
	if len(got) != 2 || math.Abs(got[0]-2) > 0.01 || math.Abs(got[1]-0.5) > 0.01 {
		t.Fatalf("ratios %v; want 2 and 0.5", got)
	}
	drift := ir.baselineDrift()
	if math.Abs(drift[0]-1.5) > 0.01 || math.Abs(drift[1]-1) > 0.01 || math.Abs(worstSpread(drift)-1.5) > 0.01 {
		t.Fatalf("drift %v", drift)
	}
	if lo, hi := ir.baselineAcross(); math.Abs(lo-5) > 0.01 || math.Abs(hi-10) > 0.01 {
		t.Fatalf("across %g–%g; want 5–10", lo, hi)
	}
	if spread(0.8) != 1.25 || spread(1.25) != 1.25 {
		t.Fatal("spread is not symmetric")
	}
}

// TestForQuick: -quick leaves out nginx's mirror to a shadow that stalls
// it, and nothing else; the full run keeps every variant.
func TestForQuick(t *testing.T) {
	variants := []variant{caddyBaseline,
		{name: "caddy mirror, hanging shadow", server: "caddy", mirror: mirrorTo(shadowHanging)},
		{name: "nginx proxy_pass", server: "nginx"},
		{name: "nginx mirror, fast shadow", server: "nginx", mirror: mirrorTo(shadowFast)},
		{name: "nginx mirror, hanging shadow", server: "nginx", mirror: mirrorTo(shadowHanging)},
		{name: "nginx mirror, 1 MiB/s shadow", server: "nginx", mirror: mirrorTo(shadowTrickle)},
	}
	if got := forQuick(&config{}, variants); len(got) != len(variants) {
		t.Fatalf("full run: forQuick kept %d of %d variants", len(got), len(variants))
	}
	got := forQuick(&config{quick: true}, variants)
	var names []string
	for _, v := range got {
		names = append(names, v.name)
	}
	if len(got) != 4 || got[3].name != "nginx mirror, fast shadow" {
		t.Fatalf("forQuick(-quick) = %q, want the first four", names)
	}
}
