package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
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
	shadowOpen int // sockets to the shadow not in TIME_WAIT
	timeWait   int // sockets to the shadow in TIME_WAIT
}

// observer samples the proxy every interval until stopped.
type observer struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

func observe(p *proxyProcess, shadowAddr string, interval time.Duration) *observer {
	o := &observer{stop: make(chan struct{}), done: make(chan struct{})}
	_, portStr, _ := strings.Cut(shadowAddr, ":")
	port, _ := strconv.Atoi(portStr)
	start := time.Now()
	go func() {
		defer close(o.done)
		warned := false // about a failed scrape, once
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			s := sample{at: time.Since(start)}
			s.rss, _ = p.memory()
			s.shadowOpen, s.timeWait = socketsTo(port)
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

// socketsTo counts the TCP sockets whose remote port is port, from the
// kernel's tables: those open, and those in TIME_WAIT.
func socketsTo(port int) (open, timeWait int) {
	want := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || !strings.HasSuffix(fields[2], want) {
				continue
			}
			switch fields[3] {
			case "06": // TIME_WAIT
				timeWait++
			case "0A": // LISTEN
			default:
				open++
			}
		}
		f.Close()
	}
	return open, timeWait
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
	out := map[string]float64{}
	f, ok := m["caddy_http_mirror_requests_total"]
	if !ok {
		return out
	}
	for _, metric := range f.GetMetric() {
		for _, l := range metric.GetLabel() {
			if l.GetName() == "outcome" && metric.GetCounter().GetValue() > 0 {
				out[l.GetValue()] += metric.GetCounter().GetValue()
			}
		}
	}
	return out
}
