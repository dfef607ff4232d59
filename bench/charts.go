package main

import (
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeCharts draws latency.png (the latency percentiles of each scenario
// that measures them, one panel each) and memory.png (RSS and goroutines
// over time in the memory scenario).
func writeCharts(dir string, sections []section) error {
	var latency []*plot.Plot
	for _, s := range sections {
		if len(s.latency) > 0 {
			p, err := latencyPlot(s)
			if err != nil {
				return err
			}
			latency = append(latency, p)
		}
	}
	if err := savePanels(filepath.Join(dir, "latency.png"), latency, 7*vg.Inch, 4.5*vg.Inch); err != nil {
		return err
	}
	var memory []*plot.Plot
	for _, s := range sections {
		if len(s.memory) > 0 {
			rss, gor, err := memoryPlots(s)
			if err != nil {
				return err
			}
			memory = append(memory, rss, gor)
		}
	}
	return savePanels(filepath.Join(dir, "memory.png"), memory, 7*vg.Inch, 3.5*vg.Inch)
}

func latencyPlot(s section) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s. %s", s.id, s.title)
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	names := make([]string, len(chartQuantiles))
	for i, q := range chartQuantiles {
		names[i] = fmt.Sprintf("p%g", q)
	}
	p.NominalX(names...)
	for i, series := range s.latency {
		pts := make(plotter.XYs, len(series.values))
		for j, v := range series.values {
			pts[j].X, pts[j].Y = float64(j), max(v, 0.01)
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i / 7)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(series.name, line, points)
	}
	return p, nil
}

func memoryPlots(s section) (rss, goroutines *plot.Plot, err error) {
	rss, goroutines = plot.New(), plot.New()
	rss.Title.Text = fmt.Sprintf("%s. %s: resident memory", s.id, s.title)
	rss.Y.Label.Text = "RSS (MiB)"
	goroutines.Title.Text = fmt.Sprintf("%s. %s: goroutines", s.id, s.title)
	goroutines.Y.Label.Text = "go_goroutines"
	for _, p := range []*plot.Plot{rss, goroutines} {
		p.X.Label.Text = "seconds"
		p.Legend.Top = true
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
	}
	for i, series := range s.memory {
		r := make(plotter.XYs, len(series.samples))
		g := make(plotter.XYs, len(series.samples))
		for j, smp := range series.samples {
			r[j].X, r[j].Y = smp.at.Seconds(), float64(smp.rss)/(1<<20)
			g[j].X, g[j].Y = smp.at.Seconds(), smp.goroutines
		}
		pairs := []struct {
			p   *plot.Plot
			pts plotter.XYs
		}{{rss, r}, {goroutines, g}}
		if !slices.ContainsFunc(series.samples, func(smp sample) bool { return smp.goroutines > 0 }) {
			pairs = pairs[:1] // nginx: no goroutines to draw
		}
		for _, pair := range pairs {
			line, err := plotter.NewLine(pair.pts)
			if err != nil {
				return nil, nil, err
			}
			line.Color = plotutil.Color(i)
			line.Width = vg.Points(1.5)
			pair.p.Add(line)
			pair.p.Legend.Add(series.name, line)
		}
	}
	rss.Y.Min, goroutines.Y.Min = 0, 0
	return rss, goroutines, nil
}

// savePanels stacks the plots vertically in one PNG; with none, it draws a
// placeholder so that the README's image link is never broken.
func savePanels(path string, plots []*plot.Plot, width, panelHeight vg.Length) error {
	if len(plots) == 0 {
		p := plot.New()
		p.Title.Text = "not measured in this run"
		plots = []*plot.Plot{p}
	}
	img := vgimg.New(width, panelHeight*vg.Length(len(plots)))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(rows, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(12)}, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runOutput runs a command and returns what it printed.
func runOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
