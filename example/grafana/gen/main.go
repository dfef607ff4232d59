// Command gen writes example/grafana/mirror.json, caddy-mirror's Grafana
// dashboard, from the builders of the Grafana Foundation SDK
// (github.com/grafana/grafana-foundation-sdk/go, Apache-2.0).
//
// Regenerate the dashboard after changing this file, from the repository
// root (the go.work workspace lists this module):
//
//	go run ./example/grafana/gen
//
// or from this folder: go generate (or go run . -o ../mirror.json).
//
// Then run go test in this folder: it fails when the committed mirror.json
// is not what this program writes, and checks what Grafana's import needs:
// the __inputs data source that every panel and query uses, and __requires.
//
// The dashboard is Grafana's classic JSON model (the SDK's dashboard
// package, which the SDK marks deprecated in favour of dashboardv2): that is
// the model that Dashboards → New → Import takes as a file, with __inputs to
// ask for a data source, and the one whose top-level panels[].targets[].expr
// the fleet test (fleet_test.go) runs against a real Prometheus. The SDK has
// no type for __inputs and __requires, the keys of Grafana's "export for
// sharing externally", so Render puts them in front of the SDK's JSON.
package main

//go:generate go run . -o ../mirror.json

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DefaultOutput is where the dashboard goes, relative to the repository root.
const DefaultOutput = "example/grafana/mirror.json"

// The data source that the import dialog asks for. Every panel and query
// refers to it as ${DS_PROMETHEUS}, which Grafana's import replaces with the
// uid of the data source picked.
const (
	InputName       = "DS_PROMETHEUS"
	InputPluginID   = "prometheus"
	InputPluginName = "Prometheus"
)

// grafanaVersion is the Grafana version that __requires names, where
// Grafana's export writes its own version. The SDK writes schemaVersion 42,
// a version that Grafana 11.6 did not have yet (it wrote 41) and Grafana 12
// has; which 12.x release first wrote 42 was not checked against a running
// Grafana, so this names 12.1.0.
const grafanaVersion = "12.1.0"

// Input is an entry of __inputs.
type Input struct {
	Name        string `json:"name"`
	Label       string `json:"label"`
	Description string `json:"description"`
	Type        string `json:"type"`
	PluginID    string `json:"pluginId"`
	PluginName  string `json:"pluginName"`
}

// Require is an entry of __requires.
type Require struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

func ptr[T any](v T) *T { return &v }

// datasource is the reference that every panel and query carries.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{
		Type: ptr(InputPluginID),
		Uid:  ptr("${" + InputName + "}"),
	}
}

// query is one PromQL query of a panel.
type query struct {
	expr, legend string
}

// rangeQuery is a query for a time series panel.
func rangeQuery(refID string, q query) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		RefId(refID).
		Datasource(datasource()).
		Expr(q.expr).
		LegendFormat(q.legend)
}

// instantQuery is a query for a table panel: its last value, as a table.
func instantQuery(refID, expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		RefId(refID).
		Datasource(datasource()).
		Expr(expr).
		Format(prometheus.PromQueryFormatTable).
		Instant().
		LegendFormat("")
}

func refID(i int) string { return string(rune('A' + i)) }

// series describes a time series panel.
type series struct {
	id          uint32
	title       string
	description string
	unit        string
	stacked     bool
	width       uint32
	queries     []query
}

func (s series) panel() *timeseries.PanelBuilder {
	stacking := common.StackingModeNone
	if s.stacked {
		stacking = common.StackingModeNormal
	}
	// A panel half the grid wide has room for its legend on the right; a
	// narrower one puts it below.
	placement := common.LegendPlacementRight
	if s.width < 12 {
		placement = common.LegendPlacementBottom
	}
	p := timeseries.NewPanelBuilder().
		Id(s.id).
		Title(s.title).
		Description(s.description).
		Datasource(datasource()).
		Span(s.width).
		Height(8).
		Stacking(common.NewStackingConfigBuilder().Mode(stacking)).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(placement).
			Calcs([]string{})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderNone))
	if s.unit != "" {
		p.Unit(s.unit)
	}
	for i, q := range s.queries {
		p.WithTarget(rangeQuery(refID(i), q))
	}
	return p
}

// tablePanel describes a table panel of instant queries, merged into one
// table without the time column.
type tablePanel struct {
	id          uint32
	title       string
	description string
	height      uint32
	exprs       []string
}

func (t tablePanel) panel() *table.PanelBuilder {
	p := table.NewPanelBuilder().
		Id(t.id).
		Title(t.title).
		Description(t.description).
		Datasource(datasource()).
		Span(12).
		Height(t.height).
		ShowHeader(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true},
		}})
	for i, expr := range t.exprs {
		p.WithTarget(instantQuery(refID(i), expr))
	}
	return p
}

// Panels are the dashboard's panels in grid order: the SDK lays them out
// left to right, 24 columns a row. Panel ids are stable: new panels get new
// ids, so that links to a panel (viewPanel=N) keep working.
func Panels() []cog.Builder[dashboard.Panel] {
	return []cog.Builder[dashboard.Panel]{
		series{
			id: 1, title: "Copies by outcome", width: 24, stacked: true, unit: "reqps",
			description: "Requests selected for each target, by what became of them, summed over every instance.",
			queries: []query{
				{"sum by (target, outcome) (rate(caddy_http_mirror_requests_total[5m]))", "{{target}} {{outcome}}"},
			},
		}.panel(),
		series{
			id: 2, title: "Copies in flight", width: 8,
			description: "Copies in flight to each target, summed over every instance.",
			queries: []query{
				{"sum by (target) (caddy_http_mirror_in_flight)", "{{target}}"},
			},
		}.panel(),
		series{
			id: 11, title: "Concurrency limit", width: 8,
			description: "How many copies each target may have in flight, a limit that adapts to the target: " +
				"the fleet's total, to set beside the copies in flight, and the lowest instance's. " +
				"A copy over its instance's limit is dropped (dropped_concurrency).",
			queries: []query{
				{"sum by (target) (caddy_http_mirror_concurrency_limit)", "{{target}} fleet"},
				{"min by (target) (caddy_http_mirror_concurrency_limit)", "{{target}} lowest instance"},
			},
		}.panel(),
		series{
			id: 12, title: "Copies waiting for a slot", width: 8,
			description: "Copies waiting for a slot under each target's concurrency limit, summed over every instance.",
			queries: []query{
				{"sum by (target) (caddy_http_mirror_waiting)", "{{target}}"},
			},
		}.panel(),
		series{
			id: 3, title: "Shadow latency against the primary", width: 12,
			description: "The shadow's duration over the primary's for compared exchanges (1 = as fast), p50 and p90.",
			queries: []query{
				{"histogram_quantile(0.5, sum by (target, le) (rate(caddy_http_mirror_latency_ratio_bucket[5m])))", "{{target}} p50 ratio"},
				{"histogram_quantile(0.9, sum by (target, le) (rate(caddy_http_mirror_latency_ratio_bucket[5m])))", "{{target}} p90 ratio"},
			},
		}.panel(),
		series{
			id: 4, title: "Shadow duration", width: 12, unit: "s",
			description: "The shadows' response time, p50 and p99, over every instance.",
			queries: []query{
				{"histogram_quantile(0.5, sum by (target, le) (rate(caddy_http_mirror_request_duration_seconds_bucket[5m])))", "{{target}} p50"},
				{"histogram_quantile(0.99, sum by (target, le) (rate(caddy_http_mirror_request_duration_seconds_bucket[5m])))", "{{target}} p99"},
			},
		}.panel(),
		series{
			id: 5, title: "Compare results", width: 12, stacked: true, unit: "reqps",
			description: "Exchanges of each comparing target, by result: match, noise, mismatch, body_truncated, skipped_streaming, no_primary.",
			queries: []query{
				{"sum by (target, result) (rate(caddy_http_mirror_compare_total[5m]))", "{{target}} {{result}}"},
			},
		}.panel(),
		series{
			id: 6, title: "Regression margin by field", width: 12,
			description: "Percentage points by which each field's shadow difference rate exceeds its noise rate, over 10 minutes (rules.yml); above the threshold is a regression.",
			queries: []query{
				{"target_field:caddy_http_mirror_regression_margin:percent10m", "{{target}} {{field}}"},
				{"max by (target) (caddy_http_mirror_compare_threshold_percent)", "{{target}} threshold"},
			},
		}.panel(),
		tablePanel{
			id: 7, title: "Regressions", height: 9,
			description: "Fields that the candidate changes beyond their noise, fleet-wide, over 10 minutes: the report's regression verdict (rules.yml). Value: the margin in percentage points.",
			exprs: []string{
				"target_field:caddy_http_mirror_regressions:percent10m",
			},
		}.panel(),
		tablePanel{
			id: 8, title: "Differing fields", height: 9,
			description: "Every differing field: how often the shadow differs (percent of compared exchanges) and how often the noise copy does.",
			exprs: []string{
				"target_field:caddy_http_mirror_shadow_differences:percent10m",
				"target_field:caddy_http_mirror_noise_differences:percent10m",
			},
		}.panel(),
		tablePanel{
			id: 9, title: "Status pairs", height: 8,
			description: "Compared exchanges by primary status and shadow status, fleet-wide, over the last hour.",
			exprs: []string{
				"sum by (target, primary_code, shadow_code) (increase(caddy_http_mirror_status_pairs_total[1h]))",
			},
		}.panel(),
		series{
			id: 10, title: "Compared exchanges", width: 12, unit: "reqps",
			description: "Exchanges compared field by field, with and without a noise response.",
			queries: []query{
				{"sum by (target, noise) (rate(caddy_http_mirror_compared_total[5m]))", "{{target}} noise={{noise}}"},
			},
		}.panel(),
		tablePanel{
			id: 13, title: "Regressions by endpoint", height: 9,
			description: "Fields that the candidate changes beyond their noise on an endpoint, fleet-wide, over 10 minutes (rules.yml): a regression of one endpoint that the target's pooled rates would dilute. Value: the margin in percentage points.",
			exprs: []string{
				"target_endpoint_field:caddy_http_mirror_regressions:percent10m",
			},
		}.panel(),
		series{
			id: 14, title: "Latency verdict by endpoint", width: 12,
			description: "Each endpoint's latest latency verdict, the worst over the instances: 1 a regression (slower than the primary and the noise copy, beyond latency_threshold and significantly), -1 an improvement, 0 neither.",
			queries: []query{
				{"max by (target, endpoint) (caddy_http_mirror_latency_verdict)", "{{target}} {{endpoint}}"},
			},
		}.panel(),
	}
}

// Dashboard builds the dashboard.
func Dashboard() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("caddy-mirror").
		Uid("caddy-mirror").
		Description("Copies, shadow latency and the field-level comparison of caddy-mirror, over every Caddy instance that Prometheus scrapes. Needs the recording rules of example/prometheus/rules.yml.").
		Tags([]string{"caddy", "mirror"}).
		Timezone(common.TimeZoneBrowser).
		Editable().
		Time("now-1h", "now").
		Refresh("30s").
		Version(1)
	for _, p := range Panels() {
		b.WithPanel(p)
	}
	return b.Build()
}

// Inputs is the dashboard's __inputs: the data source asked for at import.
func Inputs() []Input {
	return []Input{{
		Name:        InputName,
		Label:       InputPluginName,
		Description: "The Prometheus that scrapes the Caddy instances and loads example/prometheus/rules.yml.",
		Type:        "datasource",
		PluginID:    InputPluginID,
		PluginName:  InputPluginName,
	}}
}

// Requires is the dashboard's __requires, as Grafana's export writes it:
// Grafana, the data source plugin, and each panel plugin that d uses.
func Requires(d dashboard.Dashboard) []Require {
	req := []Require{
		{Type: "grafana", ID: "grafana", Name: "Grafana", Version: grafanaVersion},
		{Type: "datasource", ID: InputPluginID, Name: InputPluginName, Version: "1.0.0"},
	}
	names := map[string]string{"timeseries": "Time series", "table": "Table"}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		if p.Panel == nil || seen[p.Panel.Type] {
			continue
		}
		seen[p.Panel.Type] = true
		name, ok := names[p.Panel.Type]
		if !ok {
			name = p.Panel.Type
		}
		req = append(req, Require{Type: "panel", ID: p.Panel.Type, Name: name, Version: ""})
	}
	return req
}

// Render returns the dashboard's JSON as mirror.json holds it: __inputs and
// __requires first, then the SDK's dashboard, indented by two spaces.
func Render() ([]byte, error) {
	d, err := Dashboard()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(struct {
		Inputs   []Input   `json:"__inputs"`
		Requires []Require `json:"__requires"`
	}{Inputs(), Requires(d)})
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(body, []byte("{")) || len(body) < 3 {
		return nil, fmt.Errorf("the SDK's dashboard JSON is not a non-empty object: %.40s", body)
	}
	// {"__inputs":…,"__requires":…} + , + the dashboard's keys.
	var joined bytes.Buffer
	joined.Write(head[:len(head)-1])
	joined.WriteByte(',')
	joined.Write(body[1:])
	var out bytes.Buffer
	if err := json.Indent(&out, joined.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func main() {
	output := flag.String("o", DefaultOutput, "the file to write")
	flag.Parse()
	out, err := Render()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Dir(*output)); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v (run it from the repository root: go run ./example/grafana/gen)\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*output, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
