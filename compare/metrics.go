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
//	caddy_http_mirror_compared_total{target, endpoint, noise}
//	caddy_http_mirror_field_differences_total{target, endpoint, field, source}
//	caddy_http_mirror_status_pairs_total{target, endpoint, primary_code, shadow_code}
//	caddy_http_mirror_compare_threshold_percent{target}
//	caddy_http_mirror_latency_ratio{target, endpoint}
//	caddy_http_mirror_latency_verdict{target, endpoint}
//
// A field's shadow difference rate is its source="shadow" rate over the
// compared rate; its noise rate is its source="noise" rate over the rate
// of exchanges compared with noise="true". As in the report, a field is a
// regression of an endpoint when the first exceeds the second, both by
// that endpoint, by more than the threshold. endpoint has the report's
// values, at most max_endpoints and "(other endpoints)"; when learning
// merges an endpoint into another, the old one's series are deleted.
const (
	// maxFieldLabels is how many distinct field label values a target's
	// series may have; the differences of further fields are counted
	// under otherFields. A field keeps its label value once it has one,
	// for as long as the target's name stays configured.
	maxFieldLabels = 100
	// maxEndpointFieldLabels is how many distinct pairs of endpoint and
	// field label values a target's series may have; further fields of
	// an endpoint are counted under otherFields.
	maxEndpointFieldLabels = 1000
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
	latency      *prometheus.GaugeVec
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
			Help:      "The shadow's duration over the primary's, for each compared exchange, by target and endpoint.",
			Buckets:   []float64{0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10},
		}, []string{"target", "endpoint"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "compared_total",
			Help:      "Exchanges whose responses were compared field by field, by target, endpoint and whether a noise response was present.",
		}, []string{"target", "endpoint", "noise"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "field_differences_total",
			Help:      "Compared exchanges in which a field differs from the primary's, by target, endpoint, field and source (shadow or noise).",
		}, []string{"target", "endpoint", "field", "source"}),
		statusPairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "status_pairs_total",
			Help:      "Compared exchanges by target, endpoint, primary status code and shadow status code.",
		}, []string{"target", "endpoint", "primary_code", "shadow_code"}),
		threshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "compare_threshold_percent",
			Help:      "Percentage points by which a field's difference rate must exceed its noise rate to be a regression, by target; 0 when the target has no noise_from.",
		}, []string{"target"}),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "latency_verdict",
			Help:      "The latest latency verdict on an endpoint, judged every 32 of its exchanges: 1 a regression, -1 an improvement, 0 neither or too few samples, by target and endpoint.",
		}, []string{"target", "endpoint"}),
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
	if m.latency, err = prom.Register(reg, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

// targetCompareMetrics are one comparing target's series, with their
// target label bound up front.
type targetCompareMetrics struct {
	results      [numCompareResults]prometheus.Counter
	latencyRatio *prometheus.HistogramVec // curried with the target
	exchanges    *prometheus.CounterVec   // curried with the target
	differences  *prometheus.CounterVec   // curried with the target
	statusPairs  *prometheus.CounterVec   // curried with the target
	latency      *prometheus.GaugeVec     // curried with the target
	labels       *metricLabels
	deleters     []interface {
		DeletePartialMatch(prometheus.Labels) int
	}
	target string
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
		latencyRatio: m.latencyRatio.MustCurryWith(bound).(*prometheus.HistogramVec),
		exchanges:    m.exchanges.MustCurryWith(bound),
		differences:  m.differences.MustCurryWith(bound),
		statusPairs:  m.statusPairs.MustCurryWith(bound),
		latency:      m.latency.MustCurryWith(bound),
		labels:       labels,
		deleters:     []interface{ DeletePartialMatch(prometheus.Labels) int }{m.latencyRatio, m.exchanges, m.differences, m.statusPairs, m.latency},
		target:       label,
	}
}

// observe counts one compared exchange, recorded under its endpoint. It
// runs in the copy's goroutine, after the comparison, never on the
// request path.
func (m *targetCompareMetrics) observe(o *observation, rec *recorded) {
	for _, old := range rec.renamed {
		m.labels.forget(old)
		for _, d := range m.deleters {
			d.DeletePartialMatch(prometheus.Labels{"target": m.target, "endpoint": old})
		}
	}
	e := rec.endpoint
	noise := "false"
	if o.hadNoise {
		noise = "true"
	}
	m.exchanges.WithLabelValues(e, noise).Inc()
	for _, f := range o.fields {
		m.differences.WithLabelValues(e, m.labels.field(e, f), sourceShadow).Inc()
	}
	for _, f := range o.noiseFields {
		m.differences.WithLabelValues(e, m.labels.field(e, f), sourceNoise).Inc()
	}
	primary, shadow := m.labels.statusPair(o.primaryStatus, o.shadowStatus)
	m.statusPairs.WithLabelValues(e, primary, shadow).Inc()
	if o.primaryTime > 0 {
		m.latencyRatio.WithLabelValues(e).Observe(float64(o.shadowTime) / float64(o.primaryTime))
	}
	if rec.latency != "" {
		v := 0.0
		switch rec.latency {
		case LatencyRegression:
			v = 1
		case LatencyImprovement:
			v = -1
		}
		m.latency.WithLabelValues(e).Set(v)
	}
}

// metricLabels bounds the label values of one target's field-level
// series. It lives as long as the target's report, so that a reload keeps
// the values in use and the bound holds across configs.
type metricLabels struct {
	mu             sync.Mutex
	fields         map[string]struct{}
	endpointFields map[[2]string]struct{}
	pairs          map[statusPair]struct{}
}

// field returns the label value for the field name of endpoint: the name
// itself while fewer than maxFieldLabels field names, and fewer than
// maxEndpointFieldLabels pairs of endpoint and field, are in use;
// otherFields after.
func (l *metricLabels) field(endpoint, name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := [2]string{endpoint, name}
	if _, ok := l.endpointFields[key]; ok {
		return name
	}
	if _, ok := l.fields[name]; !ok && len(l.fields) >= maxFieldLabels || len(l.endpointFields) >= maxEndpointFieldLabels {
		return otherFields
	}
	if l.fields == nil {
		l.fields = make(map[string]struct{})
		l.endpointFields = make(map[[2]string]struct{})
	}
	l.fields[name] = struct{}{}
	l.endpointFields[key] = struct{}{}
	return name
}

// forget drops the label values of an endpoint that is gone.
func (l *metricLabels) forget(endpoint string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key := range l.endpointFields {
		if key[0] == endpoint {
			delete(l.endpointFields, key)
		}
	}
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
