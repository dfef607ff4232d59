package main

import (
	"log"
	"sync"
	"time"
)

// fidelitySampleEvery is how often scenario 13 samples Caddy's metrics
// and the backends' counts.
const fidelitySampleEvery = 50 * time.Millisecond

// waitingMetric is the gauge of copies waiting for a slot under the
// concurrency limit, which not every version of the plugin has.
const waitingMetric = "caddy_http_mirror_waiting"

// fidelitySample is one observation of a case's Caddy and backends.
type fidelitySample struct {
	at                  time.Duration // since sampling began
	limit, inFlight     float64       // the healthy target's gauges
	waiting             float64
	hasWaiting          bool               // whether /metrics had waitingMetric
	selected, delivered int64              // the backends' counts of the case's tag, cumulative
	outcomes            map[string]float64 // the healthy target's, cumulative in the running config's registry
	loadedAt            float64            // caddy_config_last_reload_success_timestamp_seconds: which config's registry
}

// fidelitySampler samples a case's Caddy until finished.
type fidelitySampler struct {
	mu      sync.Mutex
	samples []fidelitySample
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// sampleFidelity samples r's Caddy and the backends' counts of its tag
// every interval.
func sampleFidelity(r *fidelityRun, interval time.Duration) *fidelitySampler {
	s := &fidelitySampler{start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		warned := false // about a failed sample, once
		for {
			smp, err := r.sample(s.start)
			if err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, smp)
				s.mu.Unlock()
			} else if !warned {
				log.Printf("  sampling the mirror (this sample is left out): %v", err)
				warned = true
			}
			select {
			case <-tick.C:
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

// sample takes one sample of r's Caddy and the backends.
func (r *fidelityRun) sample(start time.Time) (fidelitySample, error) {
	m, err := scrape(r.p.admin)
	if err != nil {
		return fidelitySample{}, err
	}
	c, err := r.env.counts(r.tag)
	if err != nil {
		return fidelitySample{}, err
	}
	labels := r.targetLabels()
	return fidelitySample{
		at:         time.Since(start),
		limit:      m.value("caddy_http_mirror_concurrency_limit", labels),
		inFlight:   m.value("caddy_http_mirror_in_flight", labels),
		waiting:    m.value(waitingMetric, labels),
		hasWaiting: m.has(waitingMetric),
		selected:   c.Primary.Received,
		delivered:  c.Shadows[r.shadow].Received,
		outcomes:   m.byLabelWhere("caddy_http_mirror_requests_total", "outcome", labels),
		loadedAt:   m.value("caddy_config_last_reload_success_timestamp_seconds", nil),
	}, nil
}

// since is how long the sampler has run.
func (s *fidelitySampler) since() time.Duration {
	return time.Since(s.start)
}

// finish stops sampling, once, and returns the samples.
func (s *fidelitySampler) finish() []fidelitySample {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// outcomesAcrossLoads adds up the outcomes over the samples of a Caddy
// whose config was loaded again while it ran: each load starts a metrics
// registry of its own, whose counters start at 0, so each config's last
// sample is added to the next's. What a config counted after its last
// sample is not in them.
func outcomesAcrossLoads(samples []fidelitySample) map[string]float64 {
	total := map[string]float64{}
	for i, s := range samples {
		if i+1 < len(samples) && samples[i+1].loadedAt == s.loadedAt {
			continue // not this config's last sample
		}
		for k, v := range s.outcomes {
			total[k] += v
		}
	}
	return total
}

// peakInFlight is the most copies in flight at once over the samples.
func peakInFlight(samples []fidelitySample) float64 {
	var p float64
	for _, s := range samples {
		p = max(p, s.inFlight)
	}
	return p
}

// waitingSeen reports whether any sample had waitingMetric.
func waitingSeen(samples []fidelitySample) bool {
	for _, s := range samples {
		if s.hasWaiting {
			return true
		}
	}
	return false
}
