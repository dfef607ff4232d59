package main

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsByLabelAndHistogram: counters summed by a label over the
// samples that match, and a histogram's quantile as its bucket's bound.
func TestMetricsByLabelAndHistogram(t *testing.T) {
	text := `# TYPE caddy_http_mirror_requests_total counter
caddy_http_mirror_requests_total{target="first",outcome="mirrored"} 5
caddy_http_mirror_requests_total{target="second",outcome="mirrored"} 2
caddy_http_mirror_requests_total{target="first",outcome="failed"} 0
# TYPE go_sched_latencies_seconds histogram
go_sched_latencies_seconds_bucket{le="1e-06"} 90
go_sched_latencies_seconds_bucket{le="1e-05"} 99
go_sched_latencies_seconds_bucket{le="+Inf"} 100
go_sched_latencies_seconds_sum 0.001
go_sched_latencies_seconds_count 100
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	m := metrics(families)
	if got := m.byLabelWhere("caddy_http_mirror_requests_total", "outcome", map[string]string{"target": "first"}); len(got) != 1 || got["mirrored"] != 5 {
		t.Fatalf("first's outcomes %v", got)
	}
	if got := m.outcomes(); got["mirrored"] != 7 {
		t.Fatalf("all outcomes %v", got)
	}
	if q := m.histogramQuantile("go_sched_latencies_seconds", 0.99); q != 1e-05 {
		t.Fatalf("p99 %g", q)
	}
	if m.histogramQuantile("absent", 0.99) != -1 || m.has("absent") {
		t.Fatal("an absent histogram")
	}
}
