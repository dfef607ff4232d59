package mirror

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what became of one request selected for one target.
type outcome int

const (
	mirrored              outcome = iota // a response came back, whatever its status
	failed                               // a transport error, a timeout or a cancellation
	droppedInFlight                      // max_in_flight was reached
	droppedConcurrency                   // the target's concurrency limit was reached
	cancelledLate                        // sent, then cancelled: the target had stopped answering
	droppedRate                          // max_rate was reached
	droppedUnhealthy                     // the target's recent copies failed
	skippedBodyTooLarge                  // the body is over max_body_size
	skippedBodyIncomplete                // the body was not read to its end
	skippedUnsupported                   // an Upgrade or CONNECT request
	skippedLoop                          // the request is itself a copy
	skippedUnsafePath                    // the path hides dot segments that could leave the target's prefix
	cutOffSlow                           // a streamed copy's shadow fell stream_window behind
	cutOffIncomplete                     // a streamed body was not read to its end
	cutOffTooLarge                       // a streamed body grew past max_stream_size
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	mirrored:              "mirrored",
	failed:                "failed",
	droppedInFlight:       "dropped_in_flight",
	droppedConcurrency:    "dropped_concurrency",
	cancelledLate:         "cancelled_late",
	droppedRate:           "dropped_rate",
	droppedUnhealthy:      "dropped_unhealthy",
	skippedBodyTooLarge:   "skipped_body_too_large",
	skippedBodyIncomplete: "skipped_body_incomplete",
	skippedUnsupported:    "skipped_unsupported",
	skippedLoop:           "skipped_loop",
	skippedUnsafePath:     "skipped_unsafe_path",
	cutOffSlow:            "cut_off_slow",
	cutOffIncomplete:      "cut_off_incomplete",
	cutOffTooLarge:        "cut_off_too_large",
}

// String returns the outcome's label value.
func (o outcome) String() string {
	return outcomeNames[o]
}

// mirrorMetrics are the handler's Prometheus collectors. They are shared by
// every mirror handler in a config, since the registry is per config.
type mirrorMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec

	concurrencyLimit *prometheus.GaugeVec
	waiting          *prometheus.GaugeVec

	compares     *prometheus.CounterVec
	latencyRatio *prometheus.HistogramVec
	comparison   *compareMetrics // the field-level series
}

// newMirrorMetrics registers the collectors in reg, or reuses the ones that
// another mirror handler of the same config registered there. A nil reg
// leaves them unregistered.
func newMirrorMetrics(reg prometheus.Registerer) (*mirrorMetrics, error) {
	const ns, sub = "caddy", "http_mirror"
	m := &mirrorMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "requests_total",
			Help:      "Requests selected for mirroring, by target and outcome.",
		}, []string{"target", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "request_duration_seconds",
			Help:      "Duration of exchanges with mirror targets that got a response, by target and status code.",
			Buckets:   prometheus.DefBuckets,
		}, []string{"target", "code"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "in_flight",
			Help:      "Copies in flight to each mirror target, including those whose body is still arriving.",
		}, []string{"target"}),
		concurrencyLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "concurrency_limit",
			Help:      "How many copies each mirror target may have in flight now, a limit that adapts to the target.",
		}, []string{"target"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "waiting",
			Help:      "Copies waiting for a slot under each mirror target's concurrency limit, holding their body and no connection.",
		}, []string{"target"}),
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
	}
	var err error
	if m.comparison, err = newCompareMetrics(reg); err != nil {
		return nil, err
	}
	if reg == nil {
		return m, nil
	}
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.concurrencyLimit, err = register(reg, m.concurrencyLimit); err != nil {
		return nil, err
	}
	if m.waiting, err = register(reg, m.waiting); err != nil {
		return nil, err
	}
	if m.compares, err = register(reg, m.compares); err != nil {
		return nil, err
	}
	if m.latencyRatio, err = register(reg, m.latencyRatio); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c in reg, returning the collector already registered
// there under the same description if there is one.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// forTarget returns the collectors for one target, with the label values
// bound up front so that the request path does no lookups.
func (m *mirrorMetrics) forTarget(label string) ([numOutcomes]prometheus.Counter, prometheus.Gauge, prometheus.ObserverVec) {
	var counters [numOutcomes]prometheus.Counter
	for o := range numOutcomes {
		counters[o] = m.requests.WithLabelValues(label, o.String())
	}
	durations := m.duration.MustCurryWith(prometheus.Labels{"target": label})
	return counters, m.inFlight.WithLabelValues(label), durations
}

// forComparison returns the comparison collectors for one target, with
// the label values bound up front.
func (m *mirrorMetrics) forComparison(label string) ([numCompareResults]prometheus.Counter, prometheus.Observer) {
	var counters [numCompareResults]prometheus.Counter
	for r := range numCompareResults {
		counters[r] = m.compares.WithLabelValues(label, r.String())
	}
	return counters, m.latencyRatio.WithLabelValues(label)
}
