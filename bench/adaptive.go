package main

import (
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// transitionOrder is what the flapping shadow does in scenario 10.
var transitionOrder = []string{shadowFast, shadowHanging, shadowFast, shadowSlow}

// limitSample is one observation of the mirror's adaptive limit.
type limitSample struct {
	at                time.Duration
	limit, inFlight   float64
	shadowOpen        int
	goroutines        float64
	mirrored, copies  float64 // counters, cumulative
	dropped, canceled float64
}

// window is the primary's latency over one slice of the run.
type window struct {
	mu   sync.Mutex
	lats []time.Duration
}

// adaptiveTransitions is scenario 10: one connection at half capacity, the
// default settings, and a shadow that goes fast, hanging, fast again and
// slow, while the limit, the copies in flight, the sockets and the
// primary's p99 are sampled.
func adaptiveTransitions(cfg *config, env *environment) ([]section, error) {
	c, err := capacity(cfg, env)
	if err != nil {
		return nil, err
	}
	rate := c / 2
	each := 2 * cfg.phase
	total := each * time.Duration(len(transitionOrder))
	const slice = 500 * time.Millisecond

	// the baseline's p99 at the same rate, in the same run
	base, err := measure(cfg, env, caddyBaseline, phase{open: true, rate: rate, conns: 1, method: http.MethodGet, duration: each}, time.Second)
	if err != nil {
		return nil, err
	}
	baseP99 := base.quantileMs(99)

	if err := env.setFlapping(shadowFast); err != nil {
		return nil, err
	}
	p, err := startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, env.shadows[shadowFlapping], &mirrorConfig{shadow: shadowFlapping})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	q := newRequester(p.url, 1, http.MethodGet, nil, primaryBody)
	defer q.close()
	closedLoop(q, 1, cfg.warmup)

	windows := make([]window, int(total/slice)+int(4*time.Second/slice)+1)
	var samples []limitSample
	var sampleMu sync.Mutex
	start := time.Now()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		_, portStr, _ := strings.Cut(env.shadows[shadowFlapping], ":")
		port, _ := strconv.Atoi(portStr)
		for {
			if m, err := scrape(p.adminURL); err == nil {
				s := limitSample{at: time.Since(start),
					limit:      m.value("caddy_http_mirror_concurrency_limit", nil),
					inFlight:   m.value("caddy_http_mirror_in_flight", nil),
					goroutines: m.value("go_goroutines", nil),
					mirrored:   m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "mirrored"}),
					copies:     m.value("caddy_http_mirror_requests_total", nil),
					dropped:    m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "dropped_concurrency"}),
					canceled:   m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "cancelled_late"}),
				}
				s.shadowOpen, _ = socketsTo(port)
				sampleMu.Lock()
				samples = append(samples, s)
				sampleMu.Unlock()
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		for i, mode := range transitionOrder[1:] {
			select {
			case <-time.After(time.Until(start.Add(each * time.Duration(i+1)))):
			case <-stop:
				return
			}
			log.Printf("  the shadow is now %s", mode)
			if err := env.setFlapping(mode); err != nil {
				log.Printf("  %v", err)
			}
		}
	}()
	l := openLoop(q, rate, 1, total, 2*time.Second, func(due time.Time, lat time.Duration) {
		i := int(due.Sub(start) / slice)
		if i >= 0 && i < len(windows) {
			windows[i].mu.Lock()
			windows[i].lats = append(windows[i].lats, lat)
			windows[i].mu.Unlock()
		}
	})
	close(stop)
	<-sampled
	if err := env.setFlapping(shadowFast); err != nil {
		return nil, err
	}

	sec := section{
		id: "10", title: "Adaptive concurrency: a shadow that hangs, recovers and slows",
		setup: fmt.Sprintf("One keep-alive connection, open loop at %.0f req/s (half of %.0f), GET, default settings. The shadow is %s for %s each. "+
			"Sampled every 250 ms from /metrics and /proc/net/tcp; the primary's p99 per %s, against the baseline's %.2f ms over %s at the same rate.",
			rate, c, joinModes(), each, slice, baseP99, each),
		target: "Within 2 s of the hang, the copies held fall to the floor (4); after recovery, 99% of copies mirrored again within 10 s; " +
			"a slow (200 ms) shadow 99% mirrored after a warm-up of ≤ 5 s with the limit near rate × latency; the primary's p99 ≤ 1.3× over the transitions.",
	}
	rows := [][]string{}
	for i, mode := range transitionOrder {
		from, to := each*time.Duration(i), each*time.Duration(i+1)
		var ph []limitSample
		for _, s := range samples {
			if s.at >= from && s.at < to {
				ph = append(ph, s)
			}
		}
		if len(ph) < 2 {
			continue
		}
		first, last := ph[0], ph[len(ph)-1]
		var peakIn, peakOpen, peakG float64
		for _, s := range ph {
			peakIn, peakOpen, peakG = max(peakIn, s.inFlight), max(peakOpen, float64(s.shadowOpen)), max(peakG, s.goroutines)
		}
		copies := last.copies - first.copies
		p99 := windowsP99(windows, from, to, slice)
		rows = append(rows, []string{fmt.Sprintf("%s (%s–%s)", mode, from, to),
			fmt.Sprintf("%.0f", copies), pct(last.mirrored-first.mirrored, copies), pct(last.dropped-first.dropped, copies), pct(last.canceled-first.canceled, copies),
			fmt.Sprintf("%.0f", last.limit), fmt.Sprintf("%.0f", peakIn), fmt.Sprintf("%.0f", peakOpen), fmt.Sprintf("%.0f", peakG),
			fmt.Sprintf("%.2f (%.2f)", p99, p99/baseP99)})
		switch {
		case mode == shadowHanging:
			// from the most copies held, which comes after the hang
			peak := 0
			for j, s := range ph {
				if s.inFlight > ph[peak].inFlight {
					peak = j
				}
			}
			at := firstAt(ph[peak:], func(s limitSample) bool { return s.inFlight <= 4 })
			sec.verdict(at >= 0 && at-from <= 2*time.Second, "hang: copies held peaked at %.0f, and fell to the floor %s after the shadow hung", ph[peak].inFlight, since(at, from))
		case mode == shadowFast && i > 0:
			at := settledAt(ph, 0.99)
			sec.verdict(at >= 0 && at-from <= 10*time.Second, "recovery: 99%% of copies mirrored from %s after the shadow recovered to the end of the phase", since(at, from))
		case mode == shadowSlow:
			at := settledAt(ph, 0.99)
			sec.verdict(at >= 0 && at-from <= 5*time.Second, "slow shadow: 99%% of copies mirrored from %s on to the end of the phase; limit %.0f, %.1f times rate × latency (%.0f)", since(at, from), last.limit, last.limit/(rate*0.2), rate*0.2)
		}
	}
	overall := windowsP99(windows, 0, total, slice)
	sec.verdict(overall <= 1.3*baseP99, "the primary's p99 over the whole run %.2f ms, %.2f of the baseline", overall, overall/baseP99)
	sec.tables = append(sec.tables, mdTable([]string{"shadow", "copies", "mirrored", "dropped_concurrency", "cancelled_late", "limit at end", "peak in flight", "peak sockets to shadow", "peak goroutines", "primary p99 ms (ratio)"}, rows))
	if l.errors > 0 {
		sec.problems = append(sec.problems, fmt.Sprintf("%d primary errors", l.errors))
	}
	if err := transitionChart(filepath.Join(cfg.out, "adaptive.png"), samples, windows, slice, baseP99); err != nil {
		return nil, err
	}
	sec.tables = append(sec.tables, "![Limit, copies in flight and the primary's p99 over the transitions](adaptive.png)")
	return []section{sec}, nil
}

func joinModes() string { return strings.Join(transitionOrder, " → ") }

func pct(n, of float64) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*n/of)
}

func since(at, from time.Duration) string {
	if at < 0 {
		return "never"
	}
	return (at - from).Round(10 * time.Millisecond).String()
}

// firstAt returns when ok first held, or -1.
func firstAt(ss []limitSample, ok func(limitSample) bool) time.Duration {
	for _, s := range ss {
		if ok(s) {
			return s.at
		}
	}
	return -1
}

// settledAt returns the first sample from which to the last at least
// share of the copies were mirrored, or -1.
func settledAt(ss []limitSample, share float64) time.Duration {
	last := ss[len(ss)-1]
	for _, s := range ss[:len(ss)-1] {
		if copies := last.copies - s.copies; copies > 0 && (last.mirrored-s.mirrored)/copies >= share {
			return s.at
		}
	}
	return -1
}

// windowsP99 is the p99 in milliseconds of the latencies due between from
// and to.
func windowsP99(ws []window, from, to, slice time.Duration) float64 {
	var all []time.Duration
	for i := int(from / slice); i < int(to/slice) && i < len(ws); i++ {
		all = append(all, ws[i].lats...)
	}
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return float64(all[len(all)*99/100]) / float64(time.Millisecond)
}

// transitionChart draws the limit and copies in flight, the sockets to the
// shadow, and the primary's p99 per slice, over the run.
func transitionChart(path string, ss []limitSample, ws []window, slice time.Duration, baseP99 float64) error {
	counts, lat := plot.New(), plot.New()
	counts.Title.Text = "10. Adaptive concurrency: " + joinModes()
	counts.Y.Label.Text = "copies / sockets"
	lat.Title.Text = "the primary's p99 per " + slice.String()
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
	var p99s, base plotter.XYs
	for i := range ws {
		if len(ws[i].lats) == 0 {
			continue
		}
		x := (time.Duration(i) * slice).Seconds()
		p99s = append(p99s, plotter.XY{X: x, Y: windowsP99(ws, time.Duration(i)*slice, time.Duration(i+1)*slice, slice)})
		base = append(base, plotter.XY{X: x, Y: baseP99})
	}
	for i, pts := range []plotter.XYs{p99s, base} {
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
		lat.Legend.Add([]string{"mirror", "baseline (whole run)"}[i], line)
	}
	lat.Y.Min, counts.Y.Min = 0, 0
	return savePanels(path, []*plot.Plot{counts, lat}, 8*vg.Inch, 3.5*vg.Inch)
}

// twoTargets is scenario 11: one target hangs, the other is healthy, and
// 8 connections load the mirror back to back with default settings. The
// healthy target must get every copy.
func twoTargets(cfg *config, env *environment) ([]section, error) {
	m := &mirrorConfig{shadow: shadowHanging, second: shadowFast, secondAddr: env.shadows[shadowFast]}
	p, err := startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, env.shadows[shadowHanging], m)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	const conns = 8
	q := newRequester(p.url, conns, http.MethodGet, nil, primaryBody)
	defer q.close()
	before, err := scrape(p.adminURL)
	if err != nil {
		return nil, err
	}
	obs := observe(p, env.shadows[shadowHanging], 250*time.Millisecond)
	l := closedLoop(q, conns, cfg.phase)
	samples := obs.finish()
	after, err := scrape(p.adminURL)
	if err != nil {
		return nil, err
	}
	sec := section{
		id: "11", title: "Two targets, one hanging",
		setup:  fmt.Sprintf("8 keep-alive connections, closed loop for %s, GET, default settings (max_in_flight 1024), every request copied to a hanging target and to a fast one.", cfg.phase),
		target: "The healthy target gets 100% of its copies, with no dropped_in_flight caused by the other.",
	}
	rows := [][]string{}
	var peakOpen int
	for _, s := range samples {
		peakOpen = max(peakOpen, s.shadowOpen)
	}
	for _, target := range []string{"first", "second"} {
		count := func(outcome string) float64 {
			want := map[string]string{"target": target, "outcome": outcome}
			return after.value("caddy_http_mirror_requests_total", want) - before.value("caddy_http_mirror_requests_total", want)
		}
		total := after.value("caddy_http_mirror_requests_total", map[string]string{"target": target}) -
			before.value("caddy_http_mirror_requests_total", map[string]string{"target": target}) +
			after.value("caddy_http_mirror_in_flight", map[string]string{"target": target})
		kind := map[string]string{"first": shadowHanging, "second": shadowFast}[target]
		rows = append(rows, []string{target + " (" + kind + ")", fmt.Sprintf("%.0f", total), pct(count("mirrored"), total),
			fmt.Sprintf("%.0f", count("dropped_in_flight")), fmt.Sprintf("%.0f", count("dropped_concurrency")), fmt.Sprintf("%.0f", count("cancelled_late")),
			fmt.Sprintf("%.0f", after.value("caddy_http_mirror_in_flight", map[string]string{"target": target}))})
		if target == "second" {
			inFlight := after.value("caddy_http_mirror_in_flight", map[string]string{"target": target})
			sec.verdict(count("mirrored")+inFlight == total,
				"the healthy target mirrored %.0f of %.0f copies (%.0f still in flight at the end), %.0f dropped_in_flight", count("mirrored"), total, inFlight, count("dropped_in_flight"))
		}
	}
	sec.tables = append(sec.tables, mdTable([]string{"target", "copies", "mirrored", "dropped_in_flight", "dropped_concurrency", "cancelled_late", "in flight at end"}, rows),
		fmt.Sprintf("%d requests, %.0f req/s, %d primary errors; at most %d sockets to the hanging shadow at once, not in TIME_WAIT (those being closed after a cancel included).", l.completed, l.rps(), l.errors, peakOpen))
	if l.errors > 0 {
		sec.problems = append(sec.problems, fmt.Sprintf("%d primary errors", l.errors))
	}
	return []section{sec}, nil
}
