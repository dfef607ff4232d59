package main

import (
	"fmt"
	"net/http"
	"time"
)

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
	before, err := scrape(p.admin)
	if err != nil {
		return nil, err
	}
	obs := observe(p, env.shadows[shadowHanging], 250*time.Millisecond)
	l := closedLoop(q, conns, cfg.phase)
	samples := obs.finish()
	after, err := scrape(p.admin)
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
		sec.problems = append(sec.problems, fmt.Sprintf("%d primary errors%s", l.errors, l.firstErrorNote()))
	}
	return []section{sec}, nil
}
