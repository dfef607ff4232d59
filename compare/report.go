package compare

import (
	"cmp"
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
	// maxFields and maxStatusPairs bound what a report counts; past them,
	// new fields are counted as otherFields and new status pairs are not
	// counted.
	maxFields      = 256
	maxStatusPairs = 64
	otherFields    = "(other fields)"
)

// comparisonReport accumulates one target's comparisons for the admin
// API. Everything it keeps is counts, the latest durations, and at most
// samples exchanges, each with values cut to maxValueLen bytes.
type comparisonReport struct {
	mu         sync.Mutex
	upstream   string
	noiseFrom  string
	threshold  float64
	maxSamples int

	compared  int64 // exchanges whose responses were compared
	withNoise int64 // of those, the exchanges with a noise response
	results   [numCompareResults]int64
	fields    map[string]*fieldCounts
	statuses  map[statusPair]int64
	latencies latencyRing
	samples   []sample // a ring, oldest at nextSample once full
	next      int

	labels metricLabels // the metric label values in use; reset keeps them
}

type fieldCounts struct {
	differ int64 // exchanges where the target differs from the primary
	noise  int64 // exchanges where the noise target differs from the primary
}

// statusPair is a pair of statuses: HTTP, and for gRPC, grpc-status.
type statusPair struct {
	primary, shadow         int
	primaryGRPC, shadowGRPC string
}

// sample is one kept mismatching exchange.
type sample struct {
	Time          time.Time      `json:"time"`
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
	uri           string
	primaryStatus int
	shadowStatus  int
	primaryGRPC   string // grpc-status by name, for gRPC responses
	shadowGRPC    string
	primaryTime   time.Duration
	shadowTime    time.Duration
	diffs         []difference // target vs primary
	noiseDiffs    []difference // noise target vs primary
	hadNoise      bool
	truncated     bool
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
	if r.maxSamples != c.samples {
		r.maxSamples = c.samples
		r.samples, r.next = nil, 0
	}
}

// reset forgets everything recorded.
func (r *comparisonReport) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.compared, r.withNoise, r.results = 0, 0, [numCompareResults]int64{}
	r.fields, r.statuses = nil, nil
	r.latencies = latencyRing{}
	r.samples, r.next = nil, 0
}

// count records an exchange that was not compared.
func (r *comparisonReport) count(result compareResult) {
	r.mu.Lock()
	r.results[result]++
	r.mu.Unlock()
}

// record adds a compared exchange and returns its result and the verdict
// on each of its differences, judged on the rates including it.
func (r *comparisonReport) record(o observation) (compareResult, []fieldVerdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.compared++
	if o.hadNoise {
		r.withNoise++
	}
	if r.fields == nil {
		r.fields = make(map[string]*fieldCounts)
		r.statuses = make(map[statusPair]int64)
	}
	for _, f := range distinctFields(o.diffs) {
		r.field(f).differ++
	}
	for _, f := range distinctFields(o.noiseDiffs) {
		r.field(f).noise++
	}
	pair := statusPair{o.primaryStatus, o.shadowStatus, o.primaryGRPC, o.shadowGRPC}
	if _, ok := r.statuses[pair]; ok || len(r.statuses) < maxStatusPairs {
		r.statuses[pair]++
	}
	r.latencies.add(o.primaryTime, o.shadowTime)

	result := match
	verdicts := make([]fieldVerdict, len(o.diffs))
	for i, d := range o.diffs {
		v := r.verdict(r.field(d.Field))
		verdicts[i] = fieldVerdict{d, v}
		if v == VerdictRegression {
			result = mismatch
		} else if result == match {
			result = noiseOnly
		}
	}
	if o.truncated {
		result = bodyTruncated
	}
	r.results[result]++
	if result == mismatch && r.maxSamples > 0 {
		s := sample{time.Now().UTC(), o.method, o.uri, o.primaryStatus, o.shadowStatus, verdicts}
		if len(r.samples) < r.maxSamples {
			r.samples = append(r.samples, s)
		} else {
			r.samples[r.next] = s
			r.next = (r.next + 1) % r.maxSamples
		}
	}
	return result, verdicts
}

// field returns the counts of the named field, folding fields past
// maxFields into one.
func (r *comparisonReport) field(name string) *fieldCounts {
	if f, ok := r.fields[name]; ok {
		return f
	}
	if len(r.fields) >= maxFields {
		name = otherFields
		if f, ok := r.fields[name]; ok {
			return f
		}
	}
	f := new(fieldCounts)
	r.fields[name] = f
	return f
}

// verdict judges a field on its rates: a regression when the target
// differs more often than the noise target by more than the threshold, in
// percentage points; without a noise source, every difference is one.
func (r *comparisonReport) verdict(f *fieldCounts) string {
	if r.noiseFrom == "" {
		return VerdictRegression
	}
	raw, noise := percent(f.differ, r.compared), percent(f.noise, r.withNoise)
	switch {
	case raw-noise > r.threshold:
		return VerdictRegression
	case noise > 0:
		return VerdictNoise
	default:
		return VerdictBelow
	}
}

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
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
	if len(values) == 0 {
		return LatencyPercentiles{}
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	at := func(q float64) float64 { return sorted[int(q*float64(len(sorted)-1))] }
	return LatencyPercentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99)}
}

// sortFields orders fields for the report: regressions first, then by
// how far the target's rate is above the noise.
func sortFields(fields []FieldReport) {
	slices.SortFunc(fields, func(a, b FieldReport) int {
		if ar, br := a.Verdict == VerdictRegression, b.Verdict == VerdictRegression; ar != br {
			if ar {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.RawPercent-b.NoisePercent, a.RawPercent-a.NoisePercent); c != 0 {
			return c
		}
		return cmp.Compare(a.Field, b.Field)
	})
}
