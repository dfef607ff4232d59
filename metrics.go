package mirror

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-mirror/mirror/internal/prom"
)

// mirrorMetrics are the handler's Prometheus collectors; the comparison's
// are package compare's. They are shared by
// every mirror handler in a config, since the registry is per config.
type mirrorMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec

	concurrencyLimit *prometheus.GaugeVec
	waiting          *prometheus.GaugeVec
	replicasHealthy  *prometheus.GaugeVec
	replicaCopies    *prometheus.CounterVec
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
			Help:      "Duration of round trips to mirror targets that got a response, by target and status code.",
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
		replicasHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "replicas_healthy",
			Help:      "Replicas of each mirror target's pool that are not ejected by their circuit breaker.",
		}, []string{"target"}),
		replicaCopies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "replica_copies_total",
			Help:      "Copies sent to each replica of each mirror target's pool, by target and replica (at most 64 replicas per target, then \"other\").",
		}, []string{"target", "replica"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns,
			Subsystem: sub,
			Name:      "waiting",
			Help:      "Copies waiting for a slot under each mirror target's concurrency limit, holding their body and no connection.",
		}, []string{"target"}),
	}
	var err error
	if m.requests, err = prom.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = prom.Register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.concurrencyLimit, err = prom.Register(reg, m.concurrencyLimit); err != nil {
		return nil, err
	}
	if m.replicasHealthy, err = prom.Register(reg, m.replicasHealthy); err != nil {
		return nil, err
	}
	if m.replicaCopies, err = prom.Register(reg, m.replicaCopies); err != nil {
		return nil, err
	}
	if m.waiting, err = prom.Register(reg, m.waiting); err != nil {
		return nil, err
	}
	return m, nil
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
