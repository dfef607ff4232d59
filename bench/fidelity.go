package main

import (
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"strings"
)

// Scenario 13 measures the promise that a healthy shadow gets every copy:
// the share of the requests that passed through the mirror (counted at
// the primary) whose copy reached the shadow (counted there), with the
// mirror's default settings and one healthy target, each case from a
// fresh config load. The backends count requests by their tagHeader, so
// that a readiness probe's copy, or another case's, is never counted.

// fidelityGoal is the share of copies a healthy shadow must get, for the
// cases that the issue gives it for.
const fidelityGoal = 0.999

// fidelity is scenario 13.
func fidelity(cfg *config, env *environment) ([]section, error) {
	sz := fidelitySizesFor(cfg)
	var rows []fidelityRow
	var whats []string
	for _, c := range fidelityCases(sz) {
		whats = append(whats, fmt.Sprintf("%s: %s", c.id, c.what))
		servers := []string{"caddy"}
		if c.nginx && cfg.nginx != "" {
			servers = append(servers, "nginx")
		}
		for _, server := range servers {
			got, err := c.run(cfg, env, server)
			if err != nil {
				return nil, fmt.Errorf("case %s through %s: %v", c.id, server, err)
			}
			for _, row := range got {
				row.caseID, row.what = c.id, c.what
				logFidelityRow(row)
				rows = append(rows, row)
			}
		}
	}
	sec := section{
		id: "13", title: "Fidelity: every copy to a healthy shadow",
		setup: "The mirror's default settings, one healthy target (case 7: two), each case through a fresh Caddy started with its config. " +
			"Selected: the requests that passed through the mirror, counted at the primary; delivered: the copies the shadow received, counted there " +
			"(by a header each case's requests carry, so no other request is counted). The outcomes are the target's caddy_http_mirror_requests_total over the case. " +
			"nginx's `mirror` (mirror_request_body on) runs the cases it can beside Caddy: it sends every copy, and holds the client until the copy is answered. The cases:\n\n- " +
			strings.Join(whats, "\n- "),
		target: "delivered ÷ selected ≥ 99.9% for cases 0–4 and 7 (7: compared too; 0 is issue 18's first row, where 25 of 60 got through), every copy mirrored for 5a and 5b, every upload whole for 6. A measurement: a miss does not fail the run; " +
			"a client error (but in case 4, where Caddy's own reloads may fail a request) or a copy that /metrics does not account for does.",
	}
	sec.tables = append(sec.tables, fidelityTable(rows))
	fidelityVerdicts(&sec, rows, sz)
	sec.problems = fidelityProblems(rows)
	chart, note, err := fidelityChart(filepath.Join(cfg.out, "fidelity.png"), rows)
	if err != nil {
		return nil, err
	}
	if chart {
		sec.tables = append(sec.tables, note+"\n\n![The concurrency limit, copies in flight and waiting, and copies selected and delivered, through case 1's bursts and case 4's config loads](fidelity.png)\n")
	}
	return []section{sec}, nil
}

// logFidelityRow logs one row as it is measured.
func logFidelityRow(r fidelityRow) {
	log.Printf("  case %-3s %-17s selected %6d  delivered %6d (%s)  p50 %8.2f ms  p99 %8.2f ms  errors %d%s",
		r.caseID, r.server, r.selected, r.delivered, ratioText(r), r.client.quantileMs(50),
		r.client.quantileMs(99), r.client.errors, cancelledNote(r.client))
}

// ratioText is delivered ÷ selected as a percentage, or a dash for a row
// with no mirror.
func ratioText(r fidelityRow) string {
	if r.server == "caddy, no mirror" || r.selected == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", 100*r.ratio())
}

// fidelityTable is scenario 13's table, a row per case and server.
func fidelityTable(rows []fidelityRow) string {
	var out [][]string
	for _, r := range rows {
		delivered := fmt.Sprint(r.delivered)
		if r.server == "caddy, no mirror" {
			delivered = "–"
		}
		errors := fmt.Sprint(r.client.errors)
		if r.client.firstError != "" {
			errors += " (the first: " + r.client.firstError + ")"
		}
		out = append(out, []string{r.caseID, r.server, fmt.Sprint(r.selected), delivered, ratioText(r),
			countsText(r.outcomes), countsText(r.compares),
			fmt.Sprintf("%.2f / %.2f", r.client.quantileMs(50), r.client.quantileMs(99)),
			errors, strings.Join(r.notes, "; ")})
	}
	return mdTable([]string{"case", "server", "selected", "delivered", "delivered ÷ selected", "mirror outcomes", "compare results",
		"client p50 / p99 ms", "client errors", "notes"}, out)
}

// countsText lists counts by name, or a dash when there are none.
func countsText(c map[string]float64) string {
	if len(c) == 0 {
		return "–"
	}
	var parts []string
	for name, n := range c {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// fidelityVerdicts judges each of Caddy's mirror rows against its case's
// target.
func fidelityVerdicts(sec *section, rows []fidelityRow, sz fidelitySizes) {
	for _, r := range rows {
		if r.server != "caddy" {
			continue
		}
		switch r.caseID {
		case "5a", "5b":
			sec.verdict(r.outcomes["mirrored"] == float64(r.selected), "case %s: %.0f of %d copies mirrored (%s)", r.caseID, r.outcomes["mirrored"], r.selected, countsText(r.outcomes))
		case "6":
			sec.verdict(r.delivered == int64(sz.uploads), "case 6: %d of %d uploads reached the shadow whole", r.delivered, sz.uploads)
		case "7":
			compared := comparedCount(r.compares)
			sec.verdict(r.ratio() >= fidelityGoal && compared >= fidelityGoal*float64(r.selected),
				"case 7: %d of %d copies delivered (%s), %.0f compared (%s)", r.delivered, r.selected, ratioText(r), compared, pct(compared, float64(r.selected)))
		default:
			sec.verdict(r.ratio() >= fidelityGoal, "case %s: %d of %d copies delivered (%s)", r.caseID, r.delivered, r.selected, ratioText(r))
		}
	}
}

// fidelityProblems lists what fails the run: a Caddy client that saw an
// error in a case where none is expected, a case in which nothing
// completed, or copies that /metrics does not account for.
func fidelityProblems(rows []fidelityRow) []string {
	var out []string
	for _, r := range rows {
		if !strings.HasPrefix(r.server, "caddy") {
			continue
		}
		where := fmt.Sprintf("case %s, %s", r.caseID, r.server)
		if r.client.completed == 0 {
			out = append(out, where+": no request completed")
		}
		if r.client.errors > 0 && !r.errorsExpected {
			out = append(out, fmt.Sprintf("%s: %d client errors%s", where, r.client.errors, r.client.firstErrorNote()))
		}
		if r.accountingChecked && r.unaccounted > 0 {
			out = append(out, fmt.Sprintf("%s: /metrics accounts for %.0f fewer copies (outcomes plus in flight) than the %d requests that passed through", where, r.unaccounted, r.selected))
		}
	}
	return out
}
