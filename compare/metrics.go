package compare

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-mirror/mirror/internal/prom"
)

// The comparison's field-level results as Prometheus series, so that the
// report's verdicts can be computed in PromQL over every instance of a
// fleet (example/prometheus/rules.yml does):
//
//	caddy_http_mirror_compared_total{target, noise}
//	caddy_http_mirror_field_differences_total{target, field, source}
//	caddy_http_mirror_status_pairs_total{target, primary_code, shadow_code}
//	caddy_http_mirror_compare_threshold_percent{target}
//
// A field's shadow difference rate is its source="shadow" rate over the
// compared rate; its noise rate is its source="noise" rate over the rate
// of exchanges compared with noise="true". As in the report, a field is a
// regression when the first exceeds the second by more than the threshold.
const (
	// maxFieldLabels is how many distinct field label values a target's
	// series may have; the differences of further fields are counted
	// under otherFields. A field keeps its label value once it has one,
	// for as long as the target's name stays configured.
	maxFieldLabels = 100
	// maxStatusPairLabels is how many distinct status pairs a target's
	// series may have; further pairs are counted as otherStatus →
	// otherStatus.
	maxStatusPairLabels = maxStatusPairs
	otherStatus         = "other"
)

// Values of the source label of caddy_http_mirror_field_differences_total.
const (
	sourceShadow = "shadow" // the compared target differs from the primary
	sourceNoise  = "noise"  // the noise target differs from the primary
)

// compareMetrics are the field-level comparison collectors, shared by
// every mirror handler of a config like the others.
type compareMetrics struct {
	compares     *prometheus.CounterVec
	latencyRatio *prometheus.HistogramVec
	exchanges    *prometheus.CounterVec
	differences  *prometheus.CounterVec
	statusPairs  *prometheus.CounterVec
	threshold    *prometheus.GaugeVec
}

// newCompareMetrics registers the field-level collectors in reg, or reuses
// those already there; a nil reg leaves them unregistered.
func newCompareMetrics(reg prometheus.Registerer) (*compareMetrics, error) {
	const ns, sub = "caddy", "http_mirror"
	m := &compareMetrics{
		compares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "compare_total",
			Help:      "Exchanges whose shadow response was compared with the primary's, by target and result.",
		}, []string{"target", "result"}),
		latencyRatio: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "latency_ratio",
			Help:      "The shadow's duration over the primary's, for each compared exchange, by target.",
			Buckets:   []float64{0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10},
		}, []string{"target"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "compared_total",
			Help:      "Exchanges whose responses were compared field by field, by target and whether a noise response was present.",
		}, []string{"target", "noise"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "field_differences_total",
			Help:      "Compared exchanges in which a field differs from the primary's, by target, field and source (shadow or noise).",
		}, []string{"target", "field", "source"}),
		statusPairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "status_pairs_total",
			Help:      "Compared exchanges by target, primary status code and shadow status code.",
		}, []string{"target", "primary_code", "shadow_code"}),
		threshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "compare_threshold_percent",
			Help:      "Percentage points by which a field's difference rate must exceed its noise rate to be a regression, by target; 0 when the target has no noise_from.",
		}, []string{"target"}),
	}
	var err error
	if m.compares, err = prom.Register(reg, m.compares); err != nil {
		return nil, err
	}
	if m.latencyRatio, err = prom.Register(reg, m.latencyRatio); err != nil {
		return nil, err
	}
	if m.exchanges, err = prom.Register(reg, m.exchanges); err != nil {
		return nil, err
	}
	if m.differences, err = prom.Register(reg, m.differences); err != nil {
		return nil, err
	}
	if m.statusPairs, err = prom.Register(reg, m.statusPairs); err != nil {
		return nil, err
	}
	if m.threshold, err = prom.Register(reg, m.threshold); err != nil {
		return nil, err
	}
	return m, nil
}

// targetCompareMetrics are one comparing target's series, with their
// label values bound up front.
type targetCompareMetrics struct {
	results                 [numCompareResults]prometheus.Counter
	latencyRatio            prometheus.Observer
	withoutNoise, withNoise prometheus.Counter
	differences             *prometheus.CounterVec // curried with the target
	statusPairs             *prometheus.CounterVec // curried with the target
	labels                  *metricLabels
}

// forTarget binds the series of the target named label, whose label
// values in use are kept in labels, and publishes its threshold.
func (m *compareMetrics) forTarget(label string, c *Config, labels *metricLabels) *targetCompareMetrics {
	threshold := 0.0 // without noise_from, every difference is a regression
	if c.NoiseFrom != "" {
		threshold = c.threshold
	}
	m.threshold.WithLabelValues(label).Set(threshold)
	bound := prometheus.Labels{"target": label}
	var results [numCompareResults]prometheus.Counter
	for r := range numCompareResults {
		results[r] = m.compares.WithLabelValues(label, r.String())
	}
	return &targetCompareMetrics{
		results:      results,
		latencyRatio: m.latencyRatio.WithLabelValues(label),
		withoutNoise: m.exchanges.WithLabelValues(label, "false"),
		withNoise:    m.exchanges.WithLabelValues(label, "true"),
		differences:  m.differences.MustCurryWith(bound),
		statusPairs:  m.statusPairs.MustCurryWith(bound),
		labels:       labels,
	}
}

// observe counts one compared exchange. It runs in the copy's goroutine,
// after the comparison, never on the request path.
func (m *targetCompareMetrics) observe(o observation) {
	if o.hadNoise {
		m.withNoise.Inc()
	} else {
		m.withoutNoise.Inc()
	}
	for _, f := range distinctFields(o.diffs) {
		m.differences.WithLabelValues(m.labels.field(f), sourceShadow).Inc()
	}
	for _, f := range distinctFields(o.noiseDiffs) {
		m.differences.WithLabelValues(m.labels.field(f), sourceNoise).Inc()
	}
	primary, shadow := m.labels.statusPair(o.primaryStatus, o.shadowStatus)
	m.statusPairs.WithLabelValues(primary, shadow).Inc()
}

// metricLabels bounds the label values of one target's field-level
// series. It lives as long as the target's report, so that a reload keeps
// the values in use and the bound holds across configs.
type metricLabels struct {
	mu     sync.Mutex
	fields map[string]struct{}
	pairs  map[statusPair]struct{}
}

// field returns the label value for the field name: the name itself
// while fewer than maxFieldLabels are in use, otherFields after.
func (l *metricLabels) field(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.fields[name]; ok {
		return name
	}
	if len(l.fields) >= maxFieldLabels {
		return otherFields
	}
	if l.fields == nil {
		l.fields = make(map[string]struct{})
	}
	l.fields[name] = struct{}{}
	return name
}

// statusPair returns the label values for a pair of status codes, or
// otherStatus for both once maxStatusPairLabels pairs are in use.
func (l *metricLabels) statusPair(primary, shadow int) (string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pair := statusPair{primary: primary, shadow: shadow}
	if _, ok := l.pairs[pair]; !ok {
		if len(l.pairs) >= maxStatusPairLabels {
			return otherStatus, otherStatus
		}
		if l.pairs == nil {
			l.pairs = make(map[statusPair]struct{})
		}
		l.pairs[pair] = struct{}{}
	}
	return strconv.Itoa(primary), strconv.Itoa(shadow)
}
