package mirror

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.mirror module. It serves the comparison
// report of every target that compares its responses:
//
//	GET    /mirror/report  the report as JSON
//	DELETE /mirror/report  forget everything recorded so far
//	GET    /mirror/        the same report as an HTML page
//
// Like every admin.api module it is loaded with the admin endpoint, and
// needs no configuration.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mirror",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/mirror/", Handler: caddy.AdminHandlerFunc(a.serve)},
	}
}

func (adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	switch r.URL.Path {
	case "/mirror/report":
		switch r.Method {
		case http.MethodGet:
			return writeReportJSON(w)
		case http.MethodDelete:
			reports.Range(func(_, v any) bool {
				v.(*comparisonReport).reset()
				return true
			})
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case "/mirror/", "/mirror/index.html":
		if r.Method == http.MethodGet {
			return writeReportPage(w, false)
		}
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such mirror endpoint: %s", r.URL.Path)}
	}
	w.Header().Set("Allow", "GET, DELETE")
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
}

// writeReportJSON writes the current report as JSON.
func writeReportJSON(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(currentReport())
}

// reportPageData is what the HTML page shows: the report, and whether it
// is served by a site's mirror_report handler rather than the admin API.
type reportPageData struct {
	report
	OnSite bool
}

// writeReportPage writes the current report as the HTML page.
func writeReportPage(w http.ResponseWriter, onSite bool) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return reportPage.Execute(w, reportPageData{currentReport(), onSite})
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
func latencyBars(l latencyReport) []latencyBar {
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

// report is the body of GET /mirror/report.
type report struct {
	Targets []targetReport `json:"targets"`
}

// targetReport is one comparing target's report.
type targetReport struct {
	Name        string             `json:"name"`
	Upstream    string             `json:"upstream"`
	NoiseFrom   string             `json:"noise_from,omitempty"`
	Threshold   float64            `json:"threshold"`
	Compared    int64              `json:"compared"`
	WithNoise   int64              `json:"compared_with_noise"`
	Counts      map[string]int64   `json:"counts"`
	Fields      []fieldReport      `json:"fields"`
	StatusPairs []statusPairReport `json:"status_pairs"`
	LatencyMS   latencyReport      `json:"latency_ms"`
	Samples     []sample           `json:"samples"`
}

type fieldReport struct {
	Field        string  `json:"field"`
	Differences  int64   `json:"differences"`
	RawPercent   float64 `json:"raw_percent"`
	NoisePercent float64 `json:"noise_percent"`
	Verdict      string  `json:"verdict"`
}

type statusPairReport struct {
	Primary     int     `json:"primary"`
	Shadow      int     `json:"shadow"`
	PrimaryGRPC string  `json:"primary_grpc,omitempty"` // grpc-status, by name
	ShadowGRPC  string  `json:"shadow_grpc,omitempty"`
	Count       int64   `json:"count"`
	Percent     float64 `json:"percent"`
}

type latencyReport struct {
	Primary latencyPercentiles `json:"primary"`
	Shadow  latencyPercentiles `json:"shadow"`
	Window  int                `json:"window"`
}

type latencyPercentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// maxReportedFields is how many of the top differing fields a report lists.
const maxReportedFields = 50

// currentReport snapshots every comparing target's report, by name.
func currentReport() report {
	out := report{Targets: []targetReport{}}
	reports.Range(func(k, v any) bool {
		out.Targets = append(out.Targets, v.(*comparisonReport).snapshot(k.(string)))
		return true
	})
	slices.SortFunc(out.Targets, func(a, b targetReport) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// snapshot returns the report as it stands.
func (r *comparisonReport) snapshot(name string) targetReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := targetReport{
		Name:        name,
		Upstream:    r.upstream,
		NoiseFrom:   r.noiseFrom,
		Threshold:   r.threshold,
		Compared:    r.compared,
		WithNoise:   r.withNoise,
		Counts:      make(map[string]int64, numCompareResults),
		Fields:      []fieldReport{},
		StatusPairs: []statusPairReport{},
		Samples:     []sample{},
	}
	for res := range numCompareResults {
		t.Counts[res.String()] = r.results[res]
	}
	for name, f := range r.fields {
		if f.differ == 0 {
			continue // only the noise target differs here
		}
		t.Fields = append(t.Fields, fieldReport{
			Field:        name,
			Differences:  f.differ,
			RawPercent:   percent(f.differ, r.compared),
			NoisePercent: percent(f.noise, r.withNoise),
			Verdict:      r.verdict(f),
		})
	}
	sortFields(t.Fields)
	t.Fields = t.Fields[:min(len(t.Fields), maxReportedFields)]
	for pair, n := range r.statuses {
		t.StatusPairs = append(t.StatusPairs, statusPairReport{pair.primary, pair.shadow, pair.primaryGRPC, pair.shadowGRPC, n, percent(n, r.compared)})
	}
	slices.SortFunc(t.StatusPairs, func(a, b statusPairReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Primary, b.Primary), cmp.Compare(a.Shadow, b.Shadow),
			cmp.Compare(a.PrimaryGRPC, b.PrimaryGRPC), cmp.Compare(a.ShadowGRPC, b.ShadowGRPC))
	})
	n := min(r.latencies.n, latencyWindow)
	t.LatencyMS = latencyReport{
		Primary: percentiles(r.latencies.primary[:n]),
		Shadow:  percentiles(r.latencies.shadow[:n]),
		Window:  n,
	}
	// newest first
	for i := range r.samples {
		t.Samples = append(t.Samples, r.samples[(r.next-1-i+2*len(r.samples))%len(r.samples)])
	}
	return t
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Destructor  = (*comparisonReport)(nil)
)
