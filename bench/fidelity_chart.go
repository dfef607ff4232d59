package main

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// fidelitySeries is one line of a fidelity chart panel.
type fidelitySeries struct {
	name string
	f    func(fidelitySample) float64
}

// fidelityChart draws, for case 1's bursts and case 4's config loads
// through Caddy's mirror, the target's concurrency limit, its copies in
// flight and waiting, and the copies selected and delivered, over time.
// It reports whether it drew anything, and a note on the waiting gauge.
func fidelityChart(path string, rows []fidelityRow) (bool, string, error) {
	var panels []*plot.Plot
	waiting := false
	for _, id := range []string{"1", "4"} {
		i := slices.IndexFunc(rows, func(r fidelityRow) bool { return r.caseID == id && r.server == "caddy" })
		if i < 0 || len(rows[i].samples) == 0 {
			continue
		}
		r := rows[i]
		waiting = waiting || waitingSeen(r.samples)
		gauges := []fidelitySeries{
			{"concurrency_limit", func(s fidelitySample) float64 { return s.limit }},
			{"in_flight", func(s fidelitySample) float64 { return s.inFlight }},
		}
		if waitingSeen(r.samples) {
			gauges = append(gauges, fidelitySeries{"waiting", func(s fidelitySample) float64 { return s.waiting }})
		}
		counts := []fidelitySeries{
			{"selected (primary)", func(s fidelitySample) float64 { return float64(s.selected) }},
			{"delivered (shadow)", func(s fidelitySample) float64 { return float64(s.delivered) }},
		}
		title := fmt.Sprintf("case %s: %s", r.caseID, r.what)
		g, err := fidelityPanel(title, "copies", r, gauges, !waitingSeen(r.samples))
		if err != nil {
			return false, "", err
		}
		c, err := fidelityPanel("", "copies since the case began", r, counts, false)
		if err != nil {
			return false, "", err
		}
		panels = append(panels, g, c)
	}
	if len(panels) == 0 {
		return false, "", nil
	}
	note := fmt.Sprintf("Sampled every %s from Caddy's /metrics and the backends' counts. ", fidelitySampleEvery)
	if waiting {
		note += "The waiting line is `" + waitingMetric + "`, the copies waiting for a slot under the concurrency limit."
	} else {
		note += "`" + waitingMetric + "` (copies waiting for a slot) is absent from this Caddy's /metrics, so the chart has no line for it."
	}
	return true, note, savePanels(path, panels, 8*vg.Inch, 3*vg.Inch)
}

// fidelityPanel draws series of a row's samples, with its events marked.
func fidelityPanel(title, yLabel string, r fidelityRow, series []fidelitySeries, waitingAbsent bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the config loaded"
	p.Y.Label.Text = yLabel
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var top float64
	for i, sr := range series {
		pts := make(plotter.XYs, len(r.samples))
		for j, s := range r.samples {
			pts[j].X, pts[j].Y = s.at.Seconds(), sr.f(s)
			top = max(top, pts[j].Y)
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(sr.name, line)
	}
	if waitingAbsent {
		absent, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
		if err != nil {
			return nil, err
		}
		absent.Color = color.Transparent
		p.Legend.Add("waiting: absent from /metrics", absent)
	}
	if err := markEvents(p, r.events, max(top, 1)); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	return p, nil
}

// markEvents draws a thin vertical line at each event, up to top.
func markEvents(p *plot.Plot, events []fidelityEvent, top float64) error {
	for i, e := range events {
		line, err := plotter.NewLine(plotter.XYs{{X: e.at.Seconds(), Y: 0}, {X: e.at.Seconds(), Y: top}})
		if err != nil {
			return err
		}
		line.Color = color.Gray{Y: 150}
		line.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(line)
		if i == 0 {
			p.Legend.Add("each "+eventKind(e.label), line)
		}
	}
	return nil
}

// eventKind is what an event's label names: "burst" or "load".
func eventKind(label string) string {
	var kind string
	var n int
	if _, err := fmt.Sscanf(label, "%s %d", &kind, &n); err != nil {
		return label
	}
	if kind == "load" {
		return "config load"
	}
	return kind
}
