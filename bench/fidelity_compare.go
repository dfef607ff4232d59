package main

import (
	"net/http"
	"time"
)

// compareCase is case 7: a primary answering in 2 s, the healthy target
// compared with noise_from a second target that hangs, and slow uploaders
// beside the normal traffic.
func compareCase(sz fidelitySizes) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, _ string) ([]fidelityRow, error) {
		m := &mirrorConfig{shadow: shadowTunable, compare: true, second: shadowHanging, secondAddr: env.shadows[shadowHanging], secondNoise: true}
		r, err := startFidelity(cfg, env, "caddy", "7", m)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		slow := http.Header{primaryDelayHeader: {case7Primary.String()}}
		// room for twice the requests the primary holds at once
		conns := 2 * case7Rate * int(case7Primary/time.Second)
		q := r.requester(conns, http.MethodGet, nil, slow)
		defer q.close()
		uploads := r.requester(slowUploaders, http.MethodPost, nil, slow)
		defer uploads.close()
		slowTag := r.tag + "-slow"
		uploads.header[tagHeader] = []string{slowTag}
		size := max(2, int(sz.slowFor/slowUploadEvery))
		uploaded := make(chan load, 1)
		go func() {
			uploaded <- slowUploads(uploads, slowUploaders, size, slowUploadEvery, sz.slowFor+drainTimeout+time.Minute)
		}()
		normal := openLoop(q, case7Rate, conns, sz.slowFor, openLoopGrace, nil)
		slowLoad := <-uploaded
		var row fidelityRow
		row.client = mergeLoads(normal, slowLoad)
		if _, err := r.finish(&row, r.tag, slowTag); err != nil {
			return nil, err
		}
		after, err := scrape(r.p.admin)
		if err != nil {
			return nil, err
		}
		second := map[string]string{"target": "second"}
		row.note("normal requests: %d, p50 %.0f ms; slow uploads of %d bytes: %d, p50 %.0f ms", normal.completed, normal.quantileMs(50),
			size, slowLoad.completed, slowLoad.quantileMs(50))
		row.note("compared (match, mismatch, noise or body_truncated): %.0f of %d selected (%s)", comparedCount(row.compares), row.selected, pct(comparedCount(row.compares), float64(row.selected)))
		row.note("the hung noise target's outcomes: %s", countsText(subtractCounts(after.byLabelWhere("caddy_http_mirror_requests_total", "outcome", second),
			r.before.byLabelWhere("caddy_http_mirror_requests_total", "outcome", second))))
		return []fidelityRow{row}, nil
	}
}

// comparedResults are the compare results of an exchange that was
// compared, rather than skipped.
var comparedResults = []string{"match", "mismatch", "noise", "body_truncated"}

// comparedCount is how many exchanges the compare results say were
// compared.
func comparedCount(compares map[string]float64) float64 {
	var n float64
	for _, r := range comparedResults {
		n += compares[r]
	}
	return n
}
