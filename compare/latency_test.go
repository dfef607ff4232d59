package compare

import (
	weakrand "math/rand/v2"
	"slices"
	"testing"
	"time"
)

// latencySource is seeded: each run judges the same latencies.
var latencySource = weakrand.New(weakrand.NewPCG(22, 1))

// latencies returns n sorted latencies in milliseconds: base plus
// exponential noise of the given mean, the shape of a service's.
func latencies(n int, base, noise float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = base + latencySource.ExpFloat64()*noise
	}
	slices.Sort(v)
	return v
}

func TestJudgeLatency(t *testing.T) {
	th := latencyThresholds{percent: 10, minDiff: 5 * time.Millisecond, minSamples: 20}
	for _, tc := range []struct {
		name                   string
		primary, shadow, noise []float64
		want                   string
	}{
		{"equal", latencies(200, 10, 2), latencies(200, 10, 2), nil, LatencySame},
		{"equal with noise", latencies(200, 10, 2), latencies(200, 10, 2), latencies(200, 10, 2), LatencySame},
		{"shifted 40ms", latencies(200, 10, 2), latencies(200, 50, 2), nil, LatencyRegression},
		{"shifted 40ms, noise equal to the primary", latencies(200, 10, 2), latencies(200, 50, 2), latencies(200, 10, 2), LatencyRegression},
		{"faster 40ms", latencies(200, 50, 2), latencies(200, 10, 2), nil, LatencyImprovement},
		// the mirror's path, or load, slows both copies: the secondary cancels it
		{"copies slowed alike", latencies(200, 10, 2), latencies(200, 50, 2), latencies(200, 50, 2), LatencySame},
		{"significant but under the threshold", latencies(200, 100, 1), latencies(200, 103, 1), nil, LatencySame},
		{"over the threshold but noisy", latencies(20, 10, 200), latencies(20, 20, 200), nil, LatencySame},
		{"too few samples", latencies(10, 10, 2), latencies(10, 50, 2), nil, LatencyTooFew},
		{"too few noise samples", latencies(200, 10, 2), latencies(200, 50, 2), latencies(10, 10, 2), LatencyTooFew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := judgeLatency(tc.primary, tc.shadow, tc.noise, th)
			if got.Verdict != tc.want {
				t.Errorf("judgeLatency() = %s (vs primary %+v, vs noise %+v), want %s", got.Verdict, got.VsPrimary, got.VsNoise, tc.want)
			}
		})
	}
}

func TestJudgeLatency_Percentiles(t *testing.T) {
	var primary, shadow []float64
	for i := range 100 {
		primary = append(primary, float64(i+1))
		shadow = append(shadow, float64(i+1)*2)
	}
	got := judgeLatency(primary, shadow, nil, latencyThresholds{percent: 10, minDiff: time.Millisecond, minSamples: 20})
	want := LatencyPercentiles{P50: 50, P90: 90, P99: 99}
	if got.Primary != want || got.Shadow.P50 != 100 {
		t.Errorf("percentiles = %+v / %+v, want %+v and a shadow p50 of 100", got.Primary, got.Shadow, want)
	}
	if got.Verdict != LatencyRegression || got.VsPrimary.DeltaMS != 50.5 {
		t.Errorf("verdict %s, delta %+v, want a regression by 50.5 ms", got.Verdict, got.VsPrimary)
	}
}
