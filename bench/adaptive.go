package main

import (
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// transitionOrder is what the flapping shadow does in scenario 10.
var transitionOrder = []string{shadowFast, shadowHanging, shadowFast, shadowSlow}

// limitSample is one observation of the mirror's adaptive limit.
type limitSample struct {
	at                time.Duration
	limit, inFlight   float64
	waiting           float64 // of inFlight, the copies waiting for a slot, holding no connection
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

// transitionRun is one run of scenario 10's load: the primary's latency
// per slice of the run and, with a mirror, the samples of its metrics.
type transitionRun struct {
	windows []window
	samples []limitSample
	client  load // the client's side
}

// runTransitions drives one connection at rate for len(transitionOrder)
// phases of each, through Caddy with no mirror when m is nil, or through
// the mirror while the flapping shadow goes through transitionOrder.
func runTransitions(cfg *config, env *environment, rate float64, each time.Duration, m *mirrorConfig) (transitionRun, error) {
	total := each * time.Duration(len(transitionOrder))
	if err := env.setFlapping(shadowFast); err != nil {
		return transitionRun{}, err
	}
	p, err := startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, env.shadows[shadowFlapping], m)
	if err != nil {
		return transitionRun{}, err
	}
	defer p.stop()
	q := newRequester(p.url, 1, http.MethodGet, nil, primaryBody)
	defer q.close()
	closedLoop(q, 1, cfg.warmup)

	run := transitionRun{windows: make([]window, int(total/transitionSlice)+int(4*time.Second/transitionSlice)+1)}
	var sampleMu sync.Mutex
	start := time.Now()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if m == nil {
			return
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		// Caddy's own descriptors, read once, as scenario 1 counts them:
		// a read of /proc/net/tcp every sample cost the mirror's runs,
		// and not the baseline's, about 10 ms of a core each time
		port, pids := portOf(env.shadows[shadowFlapping]), p.pids()
		warned := false // about a failed scrape, once
		for {
			m, err := scrape(p.admin)
			if err != nil && !warned {
				log.Printf("  sampling the concurrency limit (this sample is left out): %v", err)
				warned = true
			}
			if err == nil {
				s := limitSample{at: time.Since(start),
					limit:      m.value("caddy_http_mirror_concurrency_limit", nil),
					inFlight:   m.value("caddy_http_mirror_in_flight", nil),
					waiting:    m.value("caddy_http_mirror_waiting", nil),
					goroutines: m.value("go_goroutines", nil),
					mirrored:   m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "mirrored"}),
					copies:     m.value("caddy_http_mirror_requests_total", nil),
					dropped:    m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "dropped_concurrency"}),
					canceled:   m.value("caddy_http_mirror_requests_total", map[string]string{"outcome": "cancelled_late"}),
				}
				s.shadowOpen = socketsHeldTo(pids, port)
				sampleMu.Lock()
				run.samples = append(run.samples, s)
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
		if m == nil {
			return
		}
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
		i := int(due.Sub(start) / transitionSlice)
		if i >= 0 && i < len(run.windows) {
			run.windows[i].mu.Lock()
			run.windows[i].lats = append(run.windows[i].lats, lat)
			run.windows[i].mu.Unlock()
		}
	})
	close(stop)
	<-sampled
	run.client = l
	if l.cancelled > 0 {
		log.Printf("  %s", strings.TrimSpace(cancelledNote(l)))
	}
	return run, env.setFlapping(shadowFast)
}

// transitionSlice is the slice of the run over which the chart shows the
// primary's p99.
const transitionSlice = 500 * time.Millisecond

// adaptiveTransitions is scenario 10: one connection at half capacity, the
// default settings, and a shadow that goes fast, hanging, fast again and
// slow, while the limit, the copies in flight, the sockets and the
// primary's p99 are sampled. Each repetition runs the same load through
// Caddy without a mirror first, and every p99 is compared with that run's
// over the same phase, so that the baseline's own spread shows.
func adaptiveTransitions(cfg *config, env *environment) ([]section, error) {
	c, err := capacity(cfg, env)
	if err != nil {
		return nil, err
	}
	rate := c / 2
	each := 2 * cfg.phase
	total := each * time.Duration(len(transitionOrder))
	type rep struct{ base, mirror transitionRun }
	var reps []rep
	for r := range cfg.reps {
		base, err := runTransitions(cfg, env, rate, each, nil)
		if err != nil {
			return nil, err
		}
		mir, err := runTransitions(cfg, env, rate, each, &mirrorConfig{shadow: shadowFlapping})
		if err != nil {
			return nil, err
		}
		b, m := windowsP99(base.windows, 0, total), windowsP99(mir.windows, 0, total)
		log.Printf("  rep %d: the primary's p99 %.2f ms without a mirror, %.2f ms through the transitions (%.2f)", r+1, b, m, m/b)
		reps = append(reps, rep{base, mir})
	}

	sec := section{
		id: "10", title: "Adaptive concurrency: a shadow that hangs, recovers and slows",
		setup: fmt.Sprintf("One keep-alive connection, open loop at %.0f req/s (half of %.0f), GET, default settings. The shadow is %s for %s each. "+
			"Sampled every 250 ms from /metrics and, for the sockets, from Caddy's own descriptors. Each repetition (%d here) first runs the same %s of load through Caddy without a mirror; "+
			"each phase's p99 is compared with that run's p99 over the same phase, and the table shows the median over the repetitions (the counts are summed).",
			rate, c, joinModes(), each, cfg.reps, total),
		target: "Within 2 s of the hang, the copies holding a slot (in flight but not waiting for one) fall to the floor (4); after recovery, 99% of copies mirrored again within 10 s; " +
			"a slow (200 ms) shadow 99% mirrored after a warm-up of ≤ 5 s with the limit near rate × latency; the primary's p99 ≤ 1.3× over the transitions.",
	}
	rows := [][]string{}
	for i, mode := range transitionOrder {
		from, to := each*time.Duration(i), each*time.Duration(i+1)
		var copies, mirrored, dropped, canceled, peakIn, peakHeld, peakWait, peakOpen, peakG, limit float64
		var ratios, p99s []float64
		var at []string
		ok := true
		for _, r := range reps {
			ph := samplesBetween(r.mirror.samples, from, to)
			if len(ph) < 2 {
				continue
			}
			first, last := ph[0], ph[len(ph)-1]
			copies += last.copies - first.copies
			mirrored += last.mirrored - first.mirrored
			dropped += last.dropped - first.dropped
			canceled += last.canceled - first.canceled
			limit = last.limit
			repWait := 0.0 // the most copies waiting in this repetition
			for _, s := range ph {
				peakIn, peakOpen, peakG = max(peakIn, s.inFlight), max(peakOpen, float64(s.shadowOpen)), max(peakG, s.goroutines)
				peakHeld, repWait = max(peakHeld, s.held()), max(repWait, s.waiting)
			}
			peakWait = max(peakWait, repWait)
			p99 := windowsP99(r.mirror.windows, from, to)
			p99s = append(p99s, p99)
			ratios = append(ratios, p99/windowsP99(r.base.windows, from, to))
			switch {
			case mode == shadowHanging:
				// from the most copies holding a slot, which comes after
				// the hang; the copies waiting for one hold their body
				// and no connection, and wait at most max_wait
				peak := 0
				for j, s := range ph {
					if s.held() > ph[peak].held() {
						peak = j
					}
				}
				t := firstAt(ph[peak:], func(s limitSample) bool { return s.held() <= 4 })
				ok = ok && t >= 0 && t-from <= 2*time.Second
				at = append(at, fmt.Sprintf("%s (peak %.0f holding a slot, %.0f waiting)", since(t, from), ph[peak].held(), repWait))
			case mode == shadowFast && i > 0:
				t := settledAt(ph, 0.99)
				ok = ok && t >= 0 && t-from <= 10*time.Second
				at = append(at, since(t, from))
			case mode == shadowSlow:
				t := settledAt(ph, 0.99)
				ok = ok && t >= 0 && t-from <= 5*time.Second
				at = append(at, fmt.Sprintf("%s (limit %.0f)", since(t, from), last.limit))
			}
		}
		if len(ratios) == 0 {
			continue
		}
		rows = append(rows, []string{fmt.Sprintf("%s (%s–%s)", mode, from, to),
			fmt.Sprintf("%.0f", copies), pct(mirrored, copies), pct(dropped, copies), pct(canceled, copies),
			fmt.Sprintf("%.0f", limit), fmt.Sprintf("%.0f; %.0f; %.0f", peakIn, peakHeld, peakWait), fmt.Sprintf("%.0f", peakOpen), fmt.Sprintf("%.0f", peakG),
			fmt.Sprintf("%.2f (%.2f; each: %s)", medianOf(p99s), medianOf(ratios), joinRatios(ratios))})
		switch {
		case mode == shadowHanging:
			sec.verdict(ok, "hang: in each repetition the copies holding a slot fell to the floor within 2 s of the hang: after %s", strings.Join(at, ", "))
		case mode == shadowFast && i > 0:
			sec.verdict(ok, "recovery: 99%% of copies mirrored from %s after the shadow recovered to the end of the phase", strings.Join(at, ", "))
		case mode == shadowSlow:
			sec.verdict(ok, "slow shadow: 99%% of copies mirrored from %s on to the end of the phase; rate × latency is %.0f", strings.Join(at, ", "), rate*0.2)
		}
	}
	sec.tables = append(sec.tables, mdTable([]string{"shadow", "copies", "mirrored", "dropped_concurrency", "cancelled_late", "limit at end", "peak in flight; holding a slot; waiting for one", "peak sockets to shadow", "peak goroutines", "primary p99 ms (ratio to no mirror)"}, rows))

	// the whole run, and how much the baseline's own phases spread
	var overall []float64
	repRows := [][]string{}
	for r, rp := range reps {
		b, m := windowsP99(rp.base.windows, 0, total), windowsP99(rp.mirror.windows, 0, total)
		overall = append(overall, m/b)
		lo, hi := b, b
		for i := range transitionOrder {
			p := windowsP99(rp.base.windows, each*time.Duration(i), each*time.Duration(i+1))
			lo, hi = min(lo, p), max(hi, p)
		}
		repRows = append(repRows, []string{fmt.Sprint(r + 1), fmt.Sprintf("%.2f", b), fmt.Sprintf("%.2f–%.2f", lo, hi), fmt.Sprintf("%.2f (%.2f)", m, m/b)})
		if n := rp.base.client.errors + rp.mirror.client.errors; n > 0 {
			sec.problems = append(sec.problems, fmt.Sprintf("repetition %d: %d primary errors%s%s", r+1, n, rp.base.client.firstErrorNote(), rp.mirror.client.firstErrorNote()))
		}
	}
	sec.tables = append(sec.tables, mdTable([]string{"repetition", "no mirror: p99 ms over the run", "no mirror: p99 of its phases", "mirror: p99 ms over the run (ratio)"}, repRows))
	sec.verdict(medianOf(overall) <= 1.3, "the primary's p99 over the whole run, median of the repetitions: %.2f of the baseline's (each: %s)", medianOf(overall), joinRatios(overall))
	last := reps[len(reps)-1]
	if err := transitionChart(filepath.Join(cfg.out, "adaptive.png"), last.mirror.samples, last.mirror.windows, last.base.windows); err != nil {
		return nil, err
	}
	sec.tables = append(sec.tables, "![Limit, copies in flight and the primary's p99 over the transitions, last repetition](adaptive.png)")
	return []section{sec}, nil
}

// samplesBetween returns the samples taken from from to to.
func samplesBetween(ss []limitSample, from, to time.Duration) []limitSample {
	var out []limitSample
	for _, s := range ss {
		if s.at >= from && s.at < to {
			out = append(out, s)
		}
	}
	return out
}

func joinRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
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

// held returns the copies holding a slot: in flight, less those waiting
// for a slot.
func (s limitSample) held() float64 { return s.inFlight - s.waiting }

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
func windowsP99(ws []window, from, to time.Duration) float64 {
	var all []time.Duration
	for i := int(from / transitionSlice); i < int(to/transitionSlice) && i < len(ws); i++ {
		all = append(all, ws[i].lats...)
	}
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return float64(all[len(all)*99/100]) / float64(time.Millisecond)
}
