package compare

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
)

// WriteReportJSON writes the current report as JSON: the body of the
// admin API's GET /mirror/report and of mirror_report's report.
func WriteReportJSON(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(CurrentReport())
}

// reportPageData is what the HTML page shows: the report, and whether it
// is served by a site's mirror_report handler rather than the admin API.
type reportPageData struct {
	Report
	OnSite bool
}

// WriteReportPage writes the current report as the HTML page; onSite says
// that it is served by a site's mirror_report rather than the admin API.
func WriteReportPage(w http.ResponseWriter, onSite bool) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return reportPage.Execute(w, reportPageData{CurrentReport(), onSite})
}

//go:embed report.html
var reportHTML string

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"latencyBars": latencyBars,
}).Parse(reportHTML))

// latencyBar is one bar of the HTML page's latency chart.
type latencyBar struct {
	Label        string
	Value        float64
	Color        string
	Y            int
	Width, TextX float64
}

// latencyBars lays out the latency chart: p50, p90 and p99 of the primary
// and the shadow, scaled to the longest.
func latencyBars(l LatencyReport) []latencyBar {
	bars := []latencyBar{
		{Label: "primary p50", Value: l.Primary.P50, Color: "#4c78a8"},
		{Label: "shadow p50", Value: l.Shadow.P50, Color: "#f58518"},
		{Label: "primary p90", Value: l.Primary.P90, Color: "#4c78a8"},
		{Label: "shadow p90", Value: l.Shadow.P90, Color: "#f58518"},
		{Label: "primary p99", Value: l.Primary.P99, Color: "#4c78a8"},
		{Label: "shadow p99", Value: l.Shadow.P99, Color: "#f58518"},
	}
	top := max(l.Primary.P99, l.Shadow.P99, 1e-9)
	for i := range bars {
		bars[i].Y = 16 + 21*i
		bars[i].Width = 300 * bars[i].Value / top
		bars[i].TextX = 115 + bars[i].Width
	}
	return bars
}

// Report is the body of GET /mirror/report: the report of every comparing
// target.
type Report struct {
	Targets []TargetReport `json:"targets"`
}

// TargetReport is one comparing target's report.
type TargetReport struct {
	Name        string             `json:"name"`
	Upstream    string             `json:"upstream"`
	NoiseFrom   string             `json:"noise_from,omitempty"`
	Threshold   float64            `json:"threshold"`
	Compared    int64              `json:"compared"`
	WithNoise   int64              `json:"compared_with_noise"`
	Counts      map[string]int64   `json:"counts"`
	Fields      []FieldReport      `json:"fields"`
	StatusPairs []StatusPairReport `json:"status_pairs"`
	LatencyMS   LatencyReport      `json:"latency_ms"`
	Samples     []sample           `json:"samples"`
	Endpoints   []EndpointReport   `json:"endpoints"`
}

type FieldReport struct {
	Field        string  `json:"field"`
	Differences  int64   `json:"differences"`
	RawPercent   float64 `json:"raw_percent"`
	NoisePercent float64 `json:"noise_percent"`
	Verdict      string  `json:"verdict"`
}

type StatusPairReport struct {
	Primary     int     `json:"primary"`
	Shadow      int     `json:"shadow"`
	PrimaryGRPC string  `json:"primary_grpc,omitempty"` // grpc-status, by name
	ShadowGRPC  string  `json:"shadow_grpc,omitempty"`
	Count       int64   `json:"count"`
	Percent     float64 `json:"percent"`
}

type LatencyReport struct {
	Primary LatencyPercentiles `json:"primary"`
	Shadow  LatencyPercentiles `json:"shadow"`
	Window  int                `json:"window"`
}

type LatencyPercentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// maxReportedFields is how many of the top differing fields a report lists.
const maxReportedFields = 50

// CurrentReport snapshots every comparing target's report, sorted by name.
func CurrentReport() Report {
	out := Report{Targets: []TargetReport{}}
	reports.Range(func(k, v any) bool {
		out.Targets = append(out.Targets, v.(*comparisonReport).snapshot(k.(string)))
		return true
	})
	slices.SortFunc(out.Targets, func(a, b TargetReport) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// snapshot returns the report as it stands. A field's verdict over the
// target is the worst of its verdict on the pooled rates and its verdicts
// on each endpoint, so that a regression of one endpoint is not diluted
// by the others.
func (r *comparisonReport) snapshot(name string) TargetReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := TargetReport{
		Name:        name,
		Upstream:    r.upstream,
		NoiseFrom:   r.noiseFrom,
		Threshold:   r.threshold,
		Compared:    r.all.compared,
		WithNoise:   r.all.withNoise,
		Counts:      make(map[string]int64, numCompareResults),
		Fields:      r.all.fieldReports(r.noiseFrom, r.threshold),
		StatusPairs: r.all.statusReports(),
		Samples:     []sample{},
	}
	for res := range numCompareResults {
		t.Counts[res.String()] = r.results[res]
	}
	n := min(r.latencies.n, latencyWindow)
	t.LatencyMS = LatencyReport{
		Primary: percentiles(r.latencies.primary[:n]),
		Shadow:  percentiles(r.latencies.shadow[:n]),
		Window:  n,
	}
	for i := len(r.samples) - 1; i >= 0; i-- { // newest first
		t.Samples = append(t.Samples, r.samples[i])
	}
	t.Endpoints = r.endpointReports(t.Samples)
	for i := range t.Fields {
		for _, e := range t.Endpoints {
			for _, f := range e.Fields {
				if f.Field == t.Fields[i].Field {
					t.Fields[i].Verdict = worstVerdict(t.Fields[i].Verdict, f.Verdict)
				}
			}
		}
	}
	sortFields(t.Fields)
	return t
}
