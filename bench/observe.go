package main

import (
	"bytes"
	"fmt"
	"log"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one observation of the proxy while load runs.
type sample struct {
	at         time.Duration
	rss        int64
	goroutines float64
	shadowOpen int // sockets to the shadow not in TIME_WAIT; sampled by observe only
	timeWait   int // sockets to the shadow in TIME_WAIT; sampled by observe only
	held       int // sockets to the shadow among the proxy's descriptors; sampled by observeHeld only
}

// observer samples the proxy every interval until stopped.
type observer struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

// observe samples the proxy's memory, goroutines and the sockets to the
// shadow every interval.
func observe(p *proxyProcess, shadowAddr string, interval time.Duration) *observer {
	return startObserver(p, shadowAddr, interval, false)
}

// observeHeld is observe that counts the sockets to the shadow among the
// proxy's own descriptors instead of those in the kernel's tables, which
// costs the shared cores far less than reading the tables (socketsHeldTo).
func observeHeld(p *proxyProcess, shadowAddr string, interval time.Duration) *observer {
	return startObserver(p, shadowAddr, interval, true)
}

func startObserver(p *proxyProcess, shadowAddr string, interval time.Duration, held bool) *observer {
	o := &observer{stop: make(chan struct{}), done: make(chan struct{})}
	port := portOf(shadowAddr)
	// the process group's members are read once: listing /proc for them
	// at every sample would cost more than the sample itself
	pids := p.pids()
	start := time.Now()
	go func() {
		defer close(o.done)
		warned := false // about a failed scrape, once
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			s := sample{at: time.Since(start)}
			s.rss, _ = memoryOf(pids)
			if held {
				s.held = socketsHeldTo(pids, port)
			} else {
				s.shadowOpen, s.timeWait = socketsTo(port)
			}
			if p.admin != nil {
				m, err := scrape(p.admin)
				if err == nil {
					s.goroutines = m.value("go_goroutines", nil)
				} else if !warned {
					log.Printf("  sampling go_goroutines (the sample is left at 0): %v", err)
					warned = true
				}
			}
			o.mu.Lock()
			o.samples = append(o.samples, s)
			o.mu.Unlock()
			select {
			case <-tick.C:
			case <-o.stop:
				return
			}
		}
	}()
	return o
}

// finish stops sampling and returns the samples.
func (o *observer) finish() []sample {
	close(o.stop)
	<-o.done
	return o.samples
}

// metrics is one scrape of a Prometheus endpoint.
type metrics map[string]*dto.MetricFamily

// scrape reads Caddy's /metrics from its admin endpoint. It fails, saying
// what came back, unless the answer is a 200 in Prometheus's text format.
func scrape(admin *adminAPI) (metrics, error) {
	body, err := admin.get("/metrics", "text/plain")
	if err != nil {
		return nil, fmt.Errorf("scraping /metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %v; the body begins %q", admin.where("/metrics"), err, excerpt(body))
	}
	return metrics(families), nil
}

// value sums the samples of a counter or gauge whose labels include want.
func (m metrics) value(name string, want map[string]string) float64 {
	f, ok := m[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, metric := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case metric.GetCounter() != nil:
			sum += metric.GetCounter().GetValue()
		case metric.GetGauge() != nil:
			sum += metric.GetGauge().GetValue()
		}
	}
	return sum
}

// outcomes returns caddy_http_mirror_requests_total by outcome, without
// the zeros.
func (m metrics) outcomes() map[string]float64 {
	return m.byLabel("caddy_http_mirror_requests_total", "outcome")
}

// byLabel sums a counter's samples by the value of one label, without the
// zeros.
func (m metrics) byLabel(name, label string) map[string]float64 {
	return m.byLabelWhere(name, label, nil)
}

// byLabelWhere is byLabel over the samples whose labels include want.
func (m metrics) byLabelWhere(name, label string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	f, ok := m[name]
	if !ok {
		return out
	}
	for _, metric := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if v, ok := labels[label]; ok && match && metric.GetCounter().GetValue() > 0 {
			out[v] += metric.GetCounter().GetValue()
		}
	}
	return out
}

// has reports whether the scrape has a metric of that name.
func (m metrics) has(name string) bool {
	_, ok := m[name]
	return ok
}

// histogramQuantile returns quantile q (0–1) of a histogram's first
// series, as the upper bound of the bucket that holds it, or -1 when the
// scrape has no such histogram.
func (m metrics) histogramQuantile(name string, q float64) float64 {
	f, ok := m[name]
	if !ok || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
		return -1
	}
	h := f.GetMetric()[0].GetHistogram()
	rank := q * float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= rank {
			return b.GetUpperBound()
		}
	}
	return -1
}
