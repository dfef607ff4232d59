package main

import (
	"fmt"
	"net/http"
	"time"
)

// reloadCase is case 4: reloadClients clients in a closed loop while
// Caddy loads its config again sz.reloads times, through the mirror to a
// 10 ms shadow, and through plain reverse_proxy for comparison.
func reloadCase(sz fidelitySizes) func(*config, *environment, string) ([]fidelityRow, error) {
	return func(cfg *config, env *environment, _ string) ([]fidelityRow, error) {
		mirrored, err := reloadRun(cfg, env, sz, mirrorTo(shadowTunable))
		if err != nil {
			return nil, err
		}
		plain, err := reloadRun(cfg, env, sz, nil)
		if err != nil {
			return nil, err
		}
		plain.server = "caddy, no mirror"
		plain.note("the same load and config loads through reverse_proxy alone: the primary's own errors, for comparison")
		return []fidelityRow{mirrored, plain}, nil
	}
}

// reloadRun runs case 4's load through a fresh Caddy with m (nil: no
// mirror) while its config is loaded again and again.
func reloadRun(cfg *config, env *environment, sz fidelitySizes, m *mirrorConfig) (fidelityRow, error) {
	var row fidelityRow
	r, err := startFidelity(cfg, env, "caddy", "4", m)
	if err != nil {
		return row, err
	}
	defer r.stop()
	// the same config, with the front on the port its port 0 got
	again, err := caddyJSONOn(r.p.admin, r.frontAddr(), env.primary, env.shadows[shadowTunable], m)
	if err != nil {
		return row, err
	}
	q := r.requester(reloadClients, http.MethodGet, nil, delayed(10*time.Millisecond))
	defer q.close()
	loaded := make(chan reloadResult, 1)
	go func() { loaded <- reloadEvery(r, again, sz.reloads, sz.reloadsOver) }()
	// a little past the last load, so that it too happens under load
	row.client = closedLoop(q, reloadClients, sz.reloadsOver+sz.reloadsOver/time.Duration(sz.reloads))
	res := <-loaded
	if res.err != nil {
		return row, res.err
	}
	row.events = res.events
	row.errorsExpected = true
	if _, err := r.finish(&row, r.tag); err != nil {
		return row, err
	}
	row.note("%d config loads (POST /load with Cache-Control: must-revalidate), each %s apart", len(res.events), sz.reloadsOver/time.Duration(sz.reloads))
	if m != nil {
		// each load starts a metrics registry of its own
		row.outcomes = subtractCounts(outcomesAcrossLoads(row.samples), r.before.outcomes())
		row.accountingChecked = false
		row.note("every config load starts a metrics registry of its own, so the outcomes are each config's as last sampled (every %s), added up: "+
			"%.0f of the selected copies are not in them (counted by a config after its last sample, or never)", fidelitySampleEvery, max(0, float64(row.selected)-sumCounts(row.outcomes)))
	}
	return row, nil
}

// reloadResult is what the loads of case 4 did.
type reloadResult struct {
	events []fidelityEvent
	err    error
}

// reloadEvery loads cfg into r's Caddy n times, one every over/n.
func reloadEvery(r *fidelityRun, cfg []byte, n int, over time.Duration) reloadResult {
	var res reloadResult
	every := over / time.Duration(n)
	tick := time.NewTicker(every) // pacing the loads, not synchronising
	defer tick.Stop()
	for i := range n {
		<-tick.C
		at := r.sampler.since()
		if err := r.p.admin.load(cfg); err != nil {
			res.err = fmt.Errorf("config load %d of %d: %v", i+1, n, err)
			return res
		}
		res.events = append(res.events, fidelityEvent{at, fmt.Sprintf("load %d", i+1)})
	}
	return res
}
