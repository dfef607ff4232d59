package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// fidelityRow is one row of scenario 13's table: one case through one
// server.
type fidelityRow struct {
	caseID, what, server string
	selected             int64              // requests that passed through the mirror: the primary's count of the case's tag
	delivered            int64              // copies the shadow received (for uploads: received whole)
	outcomes             map[string]float64 // the healthy target's, from Caddy's /metrics
	compares             map[string]float64 // the healthy target's compare results
	unaccounted          float64            // selected copies that /metrics does not account for (outcomes plus in flight)
	accountingChecked    bool
	errorsExpected       bool // a case in which the proxy itself may fail a request (config reloads)
	client               load
	notes                []string
	samples              []fidelitySample // Caddy's metrics every fidelitySampleEvery
	events               []fidelityEvent  // bursts and reloads, for the chart
}

// fidelityEvent is a moment worth marking on the chart.
type fidelityEvent struct {
	at    time.Duration // since the sampling began
	label string
}

// ratio is delivered ÷ selected.
func (r fidelityRow) ratio() float64 {
	if r.selected == 0 {
		return 0
	}
	return float64(r.delivered) / float64(r.selected)
}

// note adds a note to the row's last column.
func (r *fidelityRow) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// fidelityRun is one case's proxy, started fresh with its config, while
// the case runs.
type fidelityRun struct {
	env     *environment
	p       *proxyProcess
	server  string
	shadow  string // the kind of the shadow whose count is delivered
	tag     string // the case's requests' tagHeader
	target  string // the healthy target's name in /metrics; "" when it is the only one
	before  metrics
	sampler *fidelitySampler
	mirror  bool // whether the server mirrors
	// done says, for nginx, from the counts of the case's tags at the
	// primary and at the shadow, when the copies are all in; by default,
	// when the shadow has received as many requests as the primary.
	done   func(primary, shadow tagCount) bool
	within time.Duration // how long finish waits for the copies
}

// fidelityWithin bounds how long a case waits, after its load, for the
// copies still in flight: the mirror's 10 s timeout and some.
const fidelityWithin = 15 * time.Second

// startFidelity starts a fresh server for one case, with the mirror to
// shadow as m says (nil: no mirror), and, for Caddy, samples its metrics.
func startFidelity(cfg *config, env *environment, server, caseID string, m *mirrorConfig) (*fidelityRun, error) {
	shadow := shadowTunable
	if m != nil {
		shadow = m.shadow
	}
	var p *proxyProcess
	var err error
	if server == "nginx" {
		p, err = startNginx(cfg.proxyCPUs, env.primary, env.shadows[shadow], m)
	} else {
		p, err = startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, env.shadows[shadow], m)
	}
	if err != nil {
		return nil, err
	}
	r := &fidelityRun{env: env, p: p, server: server, shadow: shadow, tag: fmt.Sprintf("case%s-%s-%d", caseID, server, time.Now().UnixNano()),
		mirror: m != nil, within: fidelityWithin,
		done: func(primary, shadow tagCount) bool { return shadow.Received >= primary.Received }}
	if m != nil && m.second != "" {
		r.target = "first"
	}
	if p.admin != nil {
		if r.before, err = scrape(p.admin); err != nil {
			p.stop()
			return nil, err
		}
		r.sampler = sampleFidelity(r, fidelitySampleEvery)
	}
	return r, nil
}

// requester returns a requester of the proxy's front whose requests carry
// the case's tag and header.
func (r *fidelityRun) requester(conns int, method string, body []byte, header http.Header) *requester {
	q := newRequester(r.p.url, conns, method, body, primaryBody)
	q.header = http.Header{tagHeader: {r.tag}}
	for name, values := range header {
		q.header[name] = values
	}
	return q
}

// targetLabels selects the healthy target's series in /metrics.
func (r *fidelityRun) targetLabels() map[string]string {
	if r.target == "" {
		return nil
	}
	return map[string]string{"target": r.target}
}

// finish waits for the copies still in flight (Caddy) or for the shadow's
// count to stop growing (nginx), then fills the row with the backends'
// counts of tags and Caddy's outcomes, stops sampling, and returns what
// the shadow saw of the tags.
func (r *fidelityRun) finish(row *fidelityRow, tags ...string) (tagCount, error) {
	row.server = r.server
	var shadowCount tagCount
	if r.p.admin != nil {
		r.waitNoCopyInFlight()
	} else if err := r.waitCopiesIn(tags); err != nil {
		return shadowCount, err
	}
	for _, tag := range tags {
		c, err := r.env.counts(tag)
		if err != nil {
			return shadowCount, err
		}
		row.selected += c.Primary.Received
		shadowCount = addCounts(shadowCount, c.Shadows[r.shadow])
	}
	row.delivered = shadowCount.Received
	if r.sampler != nil {
		row.samples = r.sampler.finish()
	}
	if r.p.admin != nil && r.mirror {
		return shadowCount, r.readOutcomes(row)
	}
	return shadowCount, nil
}

// readOutcomes fills the row with what Caddy's /metrics says became of
// the copies since the case began.
func (r *fidelityRun) readOutcomes(row *fidelityRow) error {
	after, err := scrape(r.p.admin)
	if err != nil {
		return err
	}
	labels := r.targetLabels()
	row.outcomes = subtractCounts(after.byLabelWhere("caddy_http_mirror_requests_total", "outcome", labels),
		r.before.byLabelWhere("caddy_http_mirror_requests_total", "outcome", labels))
	row.compares = subtractCounts(after.byLabelWhere("caddy_http_mirror_compare_total", "result", labels),
		r.before.byLabelWhere("caddy_http_mirror_compare_total", "result", labels))
	accounted := sumCounts(row.outcomes) + after.value("caddy_http_mirror_in_flight", labels)
	row.unaccounted = max(0, float64(row.selected)-accounted)
	row.accountingChecked = true
	return nil
}

// waitNoCopyInFlight polls Caddy until no copy to the healthy target is
// in flight, or r.within has passed: a hung second target's copies
// (case 7) are not waited for. A copy gives its slot back once its
// comparison is done, so its compare result is counted by then.
func (r *fidelityRun) waitNoCopyInFlight() {
	deadline := time.Now().Add(r.within)
	for time.Now().Before(deadline) {
		m, err := scrape(r.p.admin)
		if err == nil && m.value("caddy_http_mirror_in_flight", r.targetLabels()) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling another process, with a deadline
	}
}

// waitCopiesIn polls the backends until r.done says that the copies
// of the tags are all in, or r.within has passed: nginx sends no copy
// once its clients are answered, so this returns at once but for a copy
// still on its way.
func (r *fidelityRun) waitCopiesIn(tags []string) error {
	deadline := time.Now().Add(r.within)
	for time.Now().Before(deadline) {
		var primary, shadow tagCount
		for _, tag := range tags {
			c, err := r.env.counts(tag)
			if err != nil {
				return err
			}
			primary, shadow = addCounts(primary, c.Primary), addCounts(shadow, c.Shadows[r.shadow])
		}
		if r.done(primary, shadow) {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // polling another process, with a deadline
	}
	return nil
}

// addCounts adds two tags' counts.
func addCounts(a, b tagCount) tagCount {
	return tagCount{Received: a.Received + b.Received, Whole: a.Whole + b.Whole, Short: a.Short + b.Short, Answered: a.Answered + b.Answered, Cut: a.Cut + b.Cut}
}

// frontAddr is the proxy's front as host:port.
func (r *fidelityRun) frontAddr() string {
	return strings.TrimSuffix(strings.TrimPrefix(r.p.url, "http://"), "/")
}

// stop stops sampling, if it still runs, and the server.
func (r *fidelityRun) stop() {
	if r.sampler != nil {
		r.sampler.finish()
	}
	r.p.stop()
}

// subtractCounts returns a − b by key, without the zeros.
func subtractCounts(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// sumCounts adds up the counts.
func sumCounts(c map[string]float64) float64 {
	var n float64
	for _, v := range c {
		n += v
	}
	return n
}
