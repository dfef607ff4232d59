package main

import (
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// transitionChart draws the limit and copies in flight, the sockets to the
// shadow, and the primary's p99 per slice, over the run.
func transitionChart(path string, ss []limitSample, ws, base []window) error {
	counts, lat := plot.New(), plot.New()
	counts.Title.Text = "10. Adaptive concurrency: " + joinModes()
	counts.Y.Label.Text = "copies / sockets"
	lat.Title.Text = "the primary's p99 per " + transitionSlice.String()
	lat.Y.Label.Text = "ms"
	for _, p := range []*plot.Plot{counts, lat} {
		p.X.Label.Text = "seconds"
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	series := []struct {
		name string
		f    func(limitSample) float64
	}{
		{"concurrency_limit", func(s limitSample) float64 { return s.limit }},
		{"in_flight", func(s limitSample) float64 { return s.inFlight }},
		{"of them waiting for a slot", func(s limitSample) float64 { return s.waiting }},
		{"sockets to shadow", func(s limitSample) float64 { return float64(s.shadowOpen) }},
	}
	for i, sr := range series {
		pts := make(plotter.XYs, len(ss))
		for j, s := range ss {
			pts[j].X, pts[j].Y = s.at.Seconds(), sr.f(s)
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		line.Width = vg.Points(1.5)
		counts.Add(line)
		counts.Legend.Add(sr.name, line)
	}
	perSlice := func(ws []window) plotter.XYs {
		var pts plotter.XYs
		for i := range ws {
			if len(ws[i].lats) == 0 {
				continue
			}
			from := time.Duration(i) * transitionSlice
			pts = append(pts, plotter.XY{X: from.Seconds(), Y: windowsP99(ws, from, from+transitionSlice)})
		}
		return pts
	}
	for i, pts := range []plotter.XYs{perSlice(ws), perSlice(base)} {
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		lat.Add(line)
		lat.Legend.Add([]string{"mirror", "no mirror, the run before"}[i], line)
	}
	lat.Y.Min, counts.Y.Min = 0, 0
	return savePanels(path, []*plot.Plot{counts, lat}, 8*vg.Inch, 3.5*vg.Inch)
}
