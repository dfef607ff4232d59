package compare

import (
	"slices"
	"sync"
	"time"
)

// compareResult is what became of one exchange that a target compares.
type compareResult int

const (
	match             compareResult = iota // no field differs
	mismatch                               // a field differs beyond its noise
	noiseOnly                              // every differing field is noise
	bodyTruncated                          // a body was over max_body_size
	skippedStreaming                       // the primary streamed, or outlived the timeout
	noPrimary                              // the route wrote no response
	primaryIncomplete                      // the primary's response never reached its client whole
	numCompareResults
)

var compareResultNames = [numCompareResults]string{
	match:             "match",
	mismatch:          "mismatch",
	noiseOnly:         "noise",
	bodyTruncated:     "body_truncated",
	skippedStreaming:  "skipped_streaming",
	noPrimary:         "no_primary",
	primaryIncomplete: "primary_incomplete",
}

// String returns the result's label value.
func (r compareResult) String() string {
	return compareResultNames[r]
}

// The verdicts on a differing field, as the report and the mismatch log
// lines give them.
const (
	VerdictRegression = "regression"      // differs more often than noise explains
	VerdictNoise      = "noise"           // within threshold of its noise rate, which is not zero
	VerdictBelow      = "below_threshold" // rare, but the secondary never showed it
)

const (
	// latencyWindow is how many of the latest durations are kept per
	// target for the report's percentiles.
	latencyWindow = 1024
	// maxFields and maxStatusPairs bound what a target's tally counts,
	// and maxEndpointFields and maxEndpointPairs an endpoint's (see
	// tallyLimits).
	maxFields         = 256
	maxStatusPairs    = 64
	maxEndpointFields = 64
	maxEndpointPairs  = 16
	otherFields       = "(other fields)"
)

var (
	targetLimits   = tallyLimits{maxFields, maxStatusPairs}
	endpointLimits = tallyLimits{maxEndpointFields, maxEndpointPairs}
)

// comparisonReport accumulates one target's comparisons for the admin
// API. Everything it keeps is counts, the latest durations, its learnt
// path templates, and at most samples exchanges, each with values cut to
// maxValueLen bytes.
type comparisonReport struct {
	mu         sync.Mutex
	upstream   string
	noiseFrom  string
	threshold  float64
	maxSamples int
	latency    latencyThresholds

	all          tally // every endpoint's exchanges
	results      [numCompareResults]int64
	latencies    latencyRing
	samples      []sample // oldest first
	endpoints    map[string]*endpointStats
	maxEndpoints int
	learner      *pathLearner

	labels metricLabels // the metric label values in use; reset keeps them
}

// statusPair is a pair of statuses: HTTP, and for gRPC, grpc-status.
type statusPair struct {
	primary, shadow         int
	primaryGRPC, shadowGRPC string
}

// sample is one kept mismatching exchange.
type sample struct {
	Time          time.Time      `json:"time"`
	Endpoint      string         `json:"endpoint"`
	Method        string         `json:"method"`
	URI           string         `json:"uri"`
	PrimaryStatus int            `json:"primary_status"`
	ShadowStatus  int            `json:"shadow_status"`
	Differences   []fieldVerdict `json:"differences"`
}

// fieldVerdict is a difference with the verdict on its field.
type fieldVerdict struct {
	difference
	Verdict string `json:"verdict"`
}

// observation is one compared exchange, as recorded.
type observation struct {
	method        string
	path          string // escaped, for learning its endpoint
	endpoint      string // named by the config; "" to learn it
	uri           string
	primaryStatus int
	shadowStatus  int
	primaryGRPC   string // grpc-status by name, for gRPC responses
	shadowGRPC    string
	primaryTime   time.Duration
	shadowTime    time.Duration
	noiseTime     time.Duration
	diffs         []difference // target vs primary
	fields        []string     // the fields of diffs, each once
	noiseFields   []string     // the fields in which the noise target differs
	hadNoise      bool
	truncated     bool
}

// recorded is what recording an observation found.
type recorded struct {
	result   compareResult
	verdicts []fieldVerdict // one for each of the observation's diffs
	endpoint string         // the exchange's endpoint, within the bound
	// renamed are endpoints that learning merged into others: their
	// series are gone
	renamed []string
	// latency is the endpoint's latency verdict when it was judged
	// again, else ""
	latency string
}

// Destruct implements caddy.Destructor.
func (r *comparisonReport) Destruct() error { return nil }

// configure applies a target's current settings.
func (r *comparisonReport) configure(upstream string, c *Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upstream = upstream
	r.noiseFrom = c.NoiseFrom
	r.threshold = c.threshold
	r.latency = c.latency
	r.maxEndpoints = c.MaxEndpoints
	if r.learner == nil || r.learner.cardinality != c.EndpointCardinality {
		r.learner = newPathLearner(c.EndpointCardinality)
	}
	if r.maxSamples != c.samples {
		r.maxSamples = c.samples
		r.samples = nil
	}
}

// reset forgets everything recorded, and what was learnt.
func (r *comparisonReport) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all, r.results = tally{}, [numCompareResults]int64{}
	r.latencies = latencyRing{}
	r.samples = nil
	r.endpoints = nil
	r.learner = newPathLearner(r.learner.cardinality)
}

// count records an exchange that was not compared.
func (r *comparisonReport) count(result compareResult) {
	r.mu.Lock()
	r.results[result]++
	r.mu.Unlock()
}

// record adds a compared exchange and returns its result and the verdict
// on each of its differences, judged on its endpoint's rates including
// it.
func (r *comparisonReport) record(o *observation) recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rec recorded
	rec.endpoint, rec.renamed = r.endpointOf(o)
	e := r.endpoints[rec.endpoint]
	r.all.add(o, targetLimits)
	e.add(o, endpointLimits)
	r.latencies.add(o.primaryTime, o.shadowTime)
	e.primary.add(o.primaryTime)
	e.shadow.add(o.shadowTime)
	if o.hadNoise {
		e.noise.add(o.noiseTime)
	}
	if e.sinceLatency++; e.sinceLatency >= latencyJudgeEvery {
		rec.latency = r.judgeLatency(e).Verdict
	}

	rec.result = match
	rec.verdicts = make([]fieldVerdict, len(o.diffs))
	for i, d := range o.diffs {
		v := e.verdict(e.field(d.Field, endpointLimits), r.noiseFrom, r.threshold)
		rec.verdicts[i] = fieldVerdict{d, v}
		if v == VerdictRegression {
			rec.result = mismatch
		} else if rec.result == match {
			rec.result = noiseOnly
		}
	}
	if o.truncated {
		rec.result = bodyTruncated
	}
	r.results[rec.result]++
	if rec.result == mismatch {
		e.mismatches++
		r.keep(sample{time.Now().UTC(), rec.endpoint, o.method, o.uri, o.primaryStatus, o.shadowStatus, rec.verdicts})
	}
	return rec
}

// keep keeps s among the samples. When they are full, the oldest sample
// of the endpoint that has most goes, so that every endpoint keeps some.
func (r *comparisonReport) keep(s sample) {
	if r.maxSamples == 0 {
		return
	}
	if len(r.samples) >= r.maxSamples {
		count := make(map[string]int)
		for _, k := range r.samples {
			count[k.Endpoint]++
		}
		most := ""
		for _, k := range r.samples { // oldest first: ties go to the oldest
			if most == "" || count[k.Endpoint] > count[most] {
				most = k.Endpoint
			}
		}
		i := slices.IndexFunc(r.samples, func(k sample) bool { return k.Endpoint == most })
		r.samples = slices.Delete(r.samples, i, i+1)
	}
	r.samples = append(r.samples, s)
}

// distinctFields returns the field names in diffs, each once.
func distinctFields(diffs []difference) []string {
	var names []string
	for _, d := range diffs {
		if !slices.Contains(names, d.Field) {
			names = append(names, d.Field)
		}
	}
	return names
}

// latencyRing keeps the latest latencyWindow pairs of durations.
type latencyRing struct {
	primary, shadow [latencyWindow]float64 // milliseconds
	n               int
}

func (l *latencyRing) add(primary, shadow time.Duration) {
	i := l.n % latencyWindow
	l.primary[i] = float64(primary) / float64(time.Millisecond)
	l.shadow[i] = float64(shadow) / float64(time.Millisecond)
	l.n++
}

// percentiles returns p50, p90 and p99 of the kept values.
func percentiles(values []float64) LatencyPercentiles {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sortedPercentiles(sorted)
}
