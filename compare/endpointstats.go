package compare

import (
	"cmp"
	"slices"
	"strings"
)

// endpointStats is one endpoint's share of a target's report: its tally,
// judged on its own rates, and the latest latencies of each side.
//
// Memory: a target keeps at most max_endpoints + 1 of them, each at most
// maxEndpointFields field counts, maxEndpointPairs status pairs and three
// windows of latencyWindowSize latencies (6 KiB), plus its learner's
// tree (see pathLearner) and the samples, shared by its endpoints.
type endpointStats struct {
	tally
	learnt       bool // its name is a learnt template, which learning may rename
	mismatches   int64
	primary      recentLatencies
	shadow       recentLatencies
	noise        recentLatencies
	sinceLatency int // exchanges since its latency was last judged
}

// latencyJudgeEvery is how often, in exchanges, an endpoint's latency is
// judged for its series; the report judges it whenever it is read.
const latencyJudgeEvery = 32

// endpointOf returns the endpoint of o, within the target's bound, with
// its stats made, and the endpoints that learning its template merged
// into others.
func (r *comparisonReport) endpointOf(o *observation) (name string, renamed []string) {
	name, learnt := o.endpoint, false
	if name == "" {
		template, reshaped, ok := r.learner.learn(o.method, o.path)
		if reshaped {
			renamed = r.relearn()
		}
		name, learnt = otherEndpoints, false
		if ok {
			name, learnt = o.method+" "+template, true
		}
	}
	if r.endpoints == nil {
		r.endpoints = make(map[string]*endpointStats)
	}
	if _, ok := r.endpoints[name]; !ok && len(r.endpoints) >= r.maxEndpoints {
		name, learnt = otherEndpoints, false
	}
	if r.endpoints[name] == nil {
		// judged on its first exchange, so that its series has a value
		r.endpoints[name] = &endpointStats{learnt: learnt, sinceLatency: latencyJudgeEvery - 1}
	}
	return name, renamed
}

// relearn renames the learnt endpoints whose templates now read
// differently, merging those that now read the same, and returns the old
// names.
func (r *comparisonReport) relearn() []string {
	var renamed []string
	for name, e := range r.endpoints {
		if !e.learnt {
			continue
		}
		method, template, _ := strings.Cut(name, " ")
		now := method + " " + r.learner.canonical(method, template)
		if now == name {
			continue
		}
		renamed = append(renamed, name)
		delete(r.endpoints, name)
		if to := r.endpoints[now]; to != nil {
			to.merge(e)
		} else {
			r.endpoints[now] = e
		}
		for i := range r.samples {
			if r.samples[i].Endpoint == name {
				r.samples[i].Endpoint = now
			}
		}
	}
	return renamed
}

// merge adds o's counts and latencies to e's.
func (e *endpointStats) merge(o *endpointStats) {
	e.tally.merge(&o.tally, endpointLimits)
	e.mismatches += o.mismatches
	e.primary.merge(&o.primary)
	e.shadow.merge(&o.shadow)
	e.noise.merge(&o.noise)
}

// judgeLatency judges e's latency on its windows.
func (r *comparisonReport) judgeLatency(e *endpointStats) EndpointLatency {
	e.sinceLatency = 0
	var noise []float64
	if r.noiseFrom != "" {
		noise = e.noise.values()
	}
	return judgeLatency(e.primary.values(), e.shadow.values(), noise, r.latency)
}

// EndpointReport is one endpoint's report.
type EndpointReport struct {
	Endpoint    string             `json:"endpoint"`
	Compared    int64              `json:"compared"`
	WithNoise   int64              `json:"compared_with_noise"`
	Mismatches  int64              `json:"mismatches"`
	Verdict     string             `json:"verdict,omitempty"` // the worst of its fields'
	Fields      []FieldReport      `json:"fields"`
	StatusPairs []StatusPairReport `json:"status_pairs"`
	Latency     EndpointLatency    `json:"latency"`
	Samples     []sample           `json:"samples"`
}

// endpointReports returns the report of each endpoint: regressions
// first, then the most compared. samples are the target's, newest first.
func (r *comparisonReport) endpointReports(samples []sample) []EndpointReport {
	out := make([]EndpointReport, 0, len(r.endpoints))
	for name, e := range r.endpoints {
		er := EndpointReport{
			Endpoint:    name,
			Compared:    e.compared,
			WithNoise:   e.withNoise,
			Mismatches:  e.mismatches,
			Fields:      e.fieldReports(r.noiseFrom, r.threshold),
			StatusPairs: e.statusReports(),
			Latency:     r.judgeLatency(e),
			Samples:     []sample{},
		}
		for _, f := range er.Fields {
			er.Verdict = worstVerdict(er.Verdict, f.Verdict)
		}
		for _, s := range samples {
			if s.Endpoint == name {
				er.Samples = append(er.Samples, s)
			}
		}
		out = append(out, er)
	}
	slices.SortFunc(out, func(a, b EndpointReport) int {
		ar := a.Verdict == VerdictRegression || a.Latency.Verdict == LatencyRegression
		br := b.Verdict == VerdictRegression || b.Latency.Verdict == LatencyRegression
		if ar != br {
			if ar {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(b.Compared, a.Compared), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	return out
}
