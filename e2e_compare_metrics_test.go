package mirror

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// sampleValue is one sample of a scraped metric family.
type sampleValue struct {
	labels map[string]string
	value  float64
}

// scrapeFamily returns every sample of the named counter or gauge family
// on the admin endpoint's /metrics, or none when it has no sample.
func scrapeFamily(t testing.TB, name string) []sampleValue {
	t.Helper()
	families := metricFamilies(t)
	var out []sampleValue
	for _, m := range families[name].GetMetric() {
		s := sampleValue{labels: map[string]string{}}
		for _, l := range m.GetLabel() {
			s.labels[l.GetName()] = l.GetValue()
		}
		if c := m.GetCounter(); c != nil {
			s.value = c.GetValue()
		} else {
			s.value = m.GetGauge().GetValue()
		}
		out = append(out, s)
	}
	return out
}

// TestCompareMetricsDiffyStyle checks the field-level series against the
// report of the same exchanges: the compared count split by noise, every
// field's shadow and noise counts, the status pairs and the threshold.
func TestCompareMetricsDiffyStyle(t *testing.T) {
	_, rec, tester := startDiffy(t, "")
	paths := []string{"/reviews/1", "/reviews/2", "/fail", "/health"}
	const perPath = 5
	for i := range perPath * len(paths) {
		do(t, tester, mustRequest(t, http.MethodGet, frontURL+paths[i%len(paths)]))
	}
	rec.wait(t, 2*perPath*len(paths))
	r, raw := getReport(t)
	c := r.Targets[0]

	compared := map[string]float64{}
	for _, s := range scrapeFamily(t, "caddy_http_mirror_compared_total") {
		compared[s.labels["target"]+" noise="+s.labels["noise"]] += s.value // over the endpoints
	}
	if compared["candidate noise=true"] != float64(c.WithNoise) || compared["candidate noise=false"] != float64(c.Compared-c.WithNoise) {
		t.Errorf("caddy_http_mirror_compared_total %v, want the report's %d with noise of %d", compared, c.WithNoise, c.Compared)
	}

	shadow, noise := map[string]float64{}, map[string]float64{}
	for _, s := range scrapeFamily(t, "caddy_http_mirror_field_differences_total") {
		if s.labels["target"] != "candidate" {
			t.Errorf("field differences for target %q: %v", s.labels["target"], s.labels)
		}
		map[string]map[string]float64{"shadow": shadow, "noise": noise}[s.labels["source"]][s.labels["field"]] += s.value
	}
	total := float64(perPath * len(paths))
	if float64(c.Compared) != total || len(c.Fields) == 0 {
		t.Fatalf("the report compared %d exchanges with %d differing fields, want %v and some:\n%s", c.Compared, len(c.Fields), total, raw)
	}
	for _, f := range c.Fields {
		if shadow[f.Field] != float64(f.Differences) {
			t.Errorf("field %s: %v shadow differences in Prometheus, %d in the report", f.Field, shadow[f.Field], f.Differences)
		}
		if got := 100 * noise[f.Field] / total; got != f.NoisePercent {
			t.Errorf("field %s: noise rate %v%% in Prometheus, %v%% in the report", f.Field, got, f.NoisePercent)
		}
	}
	if len(shadow) != len(c.Fields) {
		t.Errorf("Prometheus has shadow differences for %v, the report for %d fields:\n%s", shadow, len(c.Fields), raw)
	}

	pairs := map[string]float64{}
	for _, s := range scrapeFamily(t, "caddy_http_mirror_status_pairs_total") {
		pairs[s.labels["primary_code"]+"→"+s.labels["shadow_code"]] += s.value
	}
	if want := map[string]float64{"200→200": 3 * perPath, "200→500": perPath}; fmt.Sprint(pairs) != fmt.Sprint(want) {
		t.Errorf("status pairs %v, want %v", pairs, want)
	}

	thresholds := scrapeFamily(t, "caddy_http_mirror_compare_threshold_percent")
	if len(thresholds) != 1 || thresholds[0].value != 5 {
		t.Errorf("caddy_http_mirror_compare_threshold_percent %v, want the default threshold, 5, for the candidate", thresholds)
	}
}

// TestCompareMetricsCardinality has a shadow answer every request with
// fields that no response had before, thousands in all: the series keep
// at most 100 field names, count the rest under "(other fields)", and
// lose no difference.
func TestCompareMetricsCardinality(t *testing.T) {
	const requests, fieldsPer = 100, 40
	const maxFieldLabels, otherFields = 100, "(other fields)" // as documented
	var n atomic.Int64
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]int{}
		base := n.Add(1) * fieldsPer
		for i := range fieldsPer {
			doc[fmt.Sprintf("f%d", base+int64(i))] = i
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	defer shadow.Close()
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer primary.Close()

	rec := recordOutcomes(t)
	tester := loadSites(t, fmt.Sprintf("http://:0 {\n\tbind 127.0.0.1\n\tmirror %s {\n\t\tcompare\n\t}\n\treverse_proxy %s\n}\n",
		shadow.URL, strings.TrimPrefix(primary.URL, "http://")))
	defer unloadMirrors(tester)
	for range requests {
		do(t, tester, mustRequest(t, http.MethodGet, frontURL+"/"))
	}
	rec.wait(t, requests)

	labels, sum, other := 0, 0.0, 0.0
	for _, s := range scrapeFamily(t, "caddy_http_mirror_field_differences_total") {
		if s.labels["target"] != shadow.URL {
			continue
		}
		labels++
		sum += s.value
		if s.labels["field"] == otherFields {
			other = s.value
		}
	}
	if labels != maxFieldLabels+1 {
		t.Errorf("%d field label values, want the bound %d plus %q", labels, maxFieldLabels, otherFields)
	}
	if sum != requests*fieldsPer || other != requests*fieldsPer-maxFieldLabels {
		t.Errorf("%v differences counted, %v of them under %q; want %d and %d", sum, other, otherFields, requests*fieldsPer, requests*fieldsPer-maxFieldLabels)
	}
}
