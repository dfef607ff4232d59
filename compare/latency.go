package compare

import (
	"slices"
	"time"

	"golang.org/x/perf/benchmath"
)

// An endpoint's latency verdict compares the distribution of the shadow's
// latencies over its latest exchanges with the primary's and, with
// noise_from, with the noise target's: the secondary runs the primary's
// version and is reached the way the shadow is, so it measures what the
// mirror's own path and the moment's load add. The shadow is a
// regression (or an improvement) only when, against each baseline,
//
//   - its median is slower (faster) by more than latency_threshold
//     percent and by more than latency_min_difference, and
//   - the difference is significant: the Mann-Whitney U test, as
//     benchstat runs it (golang.org/x/perf/benchmath.AssumeNothing), gives
//     a p-value under latencyAlpha,
//
// with at least latency_min_samples exchanges on each side. A secondary
// slowed as much as the shadow, by the same load, cancels the verdict.

// The latency verdicts.
const (
	LatencyRegression  = "regression"
	LatencyImprovement = "improvement"
	LatencySame        = "same"            // no difference passes both the threshold and the test
	LatencyTooFew      = "too_few_samples" // fewer than latency_min_samples on a side
)

const (
	// latencyWindowSize is how many of an endpoint's latest latencies are
	// kept per side for its verdict and percentiles.
	latencyWindowSize = 256
	// latencyAlpha is the p-value under which a difference is
	// significant: benchstat's default.
	latencyAlpha = 0.05
	// minLatencySamples is the least latency_min_samples may be: with
	// fewer, the U test can never reach latencyAlpha.
	minLatencySamples = 5
)

// latencyThresholds is a config's latency settings.
type latencyThresholds struct {
	percent    float64
	minDiff    time.Duration
	minSamples int
}

// recentLatencies keeps the latest latencyWindowSize latencies, in
// milliseconds.
type recentLatencies struct {
	v [latencyWindowSize]float64
	n int
}

func (w *recentLatencies) add(d time.Duration) {
	w.v[w.n%latencyWindowSize] = float64(d) / float64(time.Millisecond)
	w.n++
}

// values returns a sorted copy of the kept latencies.
func (w *recentLatencies) values() []float64 {
	v := slices.Clone(w.v[:min(w.n, latencyWindowSize)])
	slices.Sort(v)
	return v
}

// merge adds o's kept latencies to w's.
func (w *recentLatencies) merge(o *recentLatencies) {
	for _, v := range o.v[:min(o.n, latencyWindowSize)] {
		w.add(time.Duration(v * float64(time.Millisecond)))
	}
}

// LatencyComparison compares the shadow's latencies with a baseline's.
type LatencyComparison struct {
	// DeltaMS is the shadow's median minus the baseline's.
	DeltaMS float64 `json:"delta_ms"`
	// DeltaPercent is DeltaMS over the baseline's median.
	DeltaPercent float64 `json:"delta_percent"`
	// P is the Mann-Whitney U test's p-value.
	P float64 `json:"p"`
}

// EndpointLatency is an endpoint's latency report.
type EndpointLatency struct {
	Primary LatencyPercentiles  `json:"primary"`
	Shadow  LatencyPercentiles  `json:"shadow"`
	Noise   *LatencyPercentiles `json:"noise,omitempty"`
	// Samples is how many exchanges the smallest side has in the window.
	Samples   int                `json:"samples"`
	VsPrimary *LatencyComparison `json:"vs_primary,omitempty"`
	VsNoise   *LatencyComparison `json:"vs_noise,omitempty"`
	Verdict   string             `json:"verdict"`
}

// judgeLatency returns the latency report of sorted windows of
// latencies: the primary's, the shadow's and, when the target has a
// noise source, the noise target's (nil without one).
func judgeLatency(primary, shadow, noise []float64, t latencyThresholds) EndpointLatency {
	l := EndpointLatency{
		Primary: sortedPercentiles(primary),
		Shadow:  sortedPercentiles(shadow),
		Samples: min(len(primary), len(shadow)),
		Verdict: LatencyTooFew,
	}
	if noise != nil {
		p := sortedPercentiles(noise)
		l.Noise = &p
		l.Samples = min(l.Samples, len(noise))
	}
	if l.Samples < t.minSamples {
		return l
	}
	vsPrimary, direction := compareLatency(primary, shadow, t)
	l.VsPrimary = &vsPrimary
	if noise != nil {
		vsNoise, d := compareLatency(noise, shadow, t)
		l.VsNoise = &vsNoise
		if d != direction {
			direction = 0
		}
	}
	switch direction {
	case 1:
		l.Verdict = LatencyRegression
	case -1:
		l.Verdict = LatencyImprovement
	default:
		l.Verdict = LatencySame
	}
	return l
}

// compareLatency compares sorted latencies of the shadow with a
// baseline's, and says whether the shadow is slower (1), faster (-1) or
// neither (0) by the thresholds and the test.
func compareLatency(base, shadow []float64, t latencyThresholds) (LatencyComparison, int) {
	th := &benchmath.Thresholds{CompareAlpha: latencyAlpha}
	// the samples are sorted already, as NewSample would
	cmp := benchmath.AssumeNothing.Compare(&benchmath.Sample{Values: base, Thresholds: th}, &benchmath.Sample{Values: shadow, Thresholds: th})
	b, s := median(base), median(shadow)
	c := LatencyComparison{DeltaMS: s - b, P: cmp.P}
	if b > 0 {
		c.DeltaPercent = 100 * (s - b) / b
	}
	minDiff := float64(t.minDiff) / float64(time.Millisecond)
	beyond := func(d, pct float64) bool { return d > minDiff && pct > t.percent }
	switch {
	case cmp.P >= latencyAlpha:
		return c, 0
	case beyond(c.DeltaMS, c.DeltaPercent):
		return c, 1
	case beyond(-c.DeltaMS, -100*(s-b)/max(s, 1e-9)):
		// faster: by the threshold of the shadow's own median, so that
		// an improvement is the inverse of a regression
		return c, -1
	}
	return c, 0
}

// median returns the median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// sortedPercentiles returns p50, p90 and p99 of sorted values.
func sortedPercentiles(sorted []float64) LatencyPercentiles {
	if len(sorted) == 0 {
		return LatencyPercentiles{}
	}
	at := func(q float64) float64 { return sorted[int(q*float64(len(sorted)-1))] }
	return LatencyPercentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99)}
}
