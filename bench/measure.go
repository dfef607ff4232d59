package main

import (
	"fmt"
	"log"
	"slices"
	"time"
)

// variant is one server configuration under test.
type variant struct {
	name   string // its row in the tables
	server string // "caddy" or "nginx"
	mirror *mirrorConfig
	// beside, a shadow kind, sends that shadow the same requests as the
	// mirror would, at the phase's rate, from a load generator of its own
	// beside the proxy, which does not mirror (besideload.go)
	beside string
}

func (v variant) shadowKind() string {
	if v.mirror == nil {
		return shadowFast
	}
	return v.mirror.shadow
}

// copiesAll reports whether the variant selects every request for copying,
// so that every request must show up in the mirror's outcomes.
func (v variant) copiesAll() bool {
	return v.server == "caddy" && v.mirror != nil && v.mirror.percent == nil && !v.mirror.matchHeader
}

// phase is the load one measurement applies.
type phase struct {
	open     bool    // open loop at rate; otherwise closed loop
	rate     float64 // requests per second, open loop only
	conns    int
	method   string
	body     []byte
	duration time.Duration
	path     string // the requests' path; "" for /
	want     []byte // the body the client must get back; nil for primaryBody
	// ownProcess runs the load generator in a process of its own, and
	// records the scheduling latencies of it and of the backends.
	ownProcess bool
	// warmup, when not 0, is the run's warm-up instead of the config's
	warmup time.Duration
	// settle, when not 0, waits that long at most after the load for
	// Caddy's copies to end and its goroutines to settle, and records it.
	settle time.Duration
}

// measurement is one run of one variant under one phase.
type measurement struct {
	load
	cpu     time.Duration // the proxy's user+system time during the phase
	backCPU time.Duration // the backends' user+system time during the phase
	// shadowCPU is the shadows' part of backCPU: the time their process
	// took from the cores that Caddy, the primary and the load generator
	// share with it
	shadowCPU time.Duration
	syscalls  int64 // the proxy's read and write system calls during the phase
	switches  int64 // the proxy's context switches during the phase
	peakRSS   int64 // the proxy's VmHWM at the end
	samples   []sample
	outcomes  map[string]float64 // mirror outcomes from Caddy's /metrics
	compares  map[string]float64 // compare results from Caddy's /metrics
	replicas  map[string]float64 // copies sent to each replica, from Caddy's /metrics
	inFlight  float64
	reached   int64 // requests that reached the primary during the run

	loadSched  schedHistogram // the load generator's scheduling latencies over the phase
	backSched  schedHistogram // the backends', with ownProcess
	proxySched float64        // Caddy's p99 from go_sched_latencies_seconds, seconds; -1 when /metrics has none
	settled    settledState   // with settle
}

// cpuPer1k is the proxy's CPU time per 1,000 completed requests.
func (m measurement) cpuPer1k() time.Duration {
	if m.completed == 0 {
		return 0
	}
	return m.cpu * 1000 / time.Duration(m.completed)
}

// peak returns the largest value of f over the samples.
func (m measurement) peak(f func(sample) float64) float64 {
	var p float64
	for _, s := range m.samples {
		p = max(p, f(s))
	}
	return p
}

// timeWaitAdded is how many sockets to the shadow entered TIME_WAIT during
// the phase (the kernel keeps them a minute, so earlier runs' are left out).
func (m measurement) timeWaitAdded() float64 {
	if len(m.samples) == 0 {
		return 0
	}
	first := float64(m.samples[0].timeWait)
	return max(0, m.peak(func(s sample) float64 { return float64(s.timeWait) })-first)
}

// measure starts the variant's server, warms it up, applies the phase while
// observing the server, and stops it.
func measure(cfg *config, env *environment, v variant, ph phase, sampleEvery time.Duration) (measurement, error) {
	shadow := env.shadows[v.shadowKind()]
	before, err := env.primaryReceived()
	if err != nil {
		return measurement{}, err
	}
	var p *proxyProcess
	switch v.server {
	case "caddy":
		p, err = startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, shadow, v.mirror)
	case "nginx":
		p, err = startNginx(cfg.proxyCPUs, env.primary, shadow, v.mirror)
	default:
		err = fmt.Errorf("unknown server %q", v.server)
	}
	if err != nil {
		return measurement{}, err
	}
	defer p.stop()
	warmup := cfg.warmup
	if ph.warmup > 0 {
		warmup = ph.warmup
	}
	drv, err := startDriver(p.url, ph, warmup)
	if err != nil {
		return measurement{}, err
	}
	defer drv.close()
	side, err := startBeside(env, v, ph, warmup)
	if err != nil {
		return measurement{}, err
	}
	defer side.wait()

	var m measurement
	var backSched0 schedHistogram
	if ph.ownProcess {
		if backSched0, err = env.schedLatencies(); err != nil {
			return m, err
		}
	}
	cpu0, back0, shadow0 := p.cpuTime(), env.cpuTime(), env.cpuTimeOf(roleShadows)
	sys0, sw0 := p.kernelWork()
	obs := startObserver(p, shadow, sampleEvery, ph.ownProcess)
	side.run(ph)
	traceCaddy(cfg.traceDir, p, v, ph)
	m.load, m.loadSched, err = drv.run()
	m.samples = obs.finish()
	if err != nil {
		return m, err
	}
	if err := side.wait(); err != nil {
		return m, err
	}
	if ph.ownProcess {
		backSched1, err := env.schedLatencies()
		if err != nil {
			return m, err
		}
		m.backSched = backSched1.since(backSched0)
	}
	m.cpu, m.backCPU, m.shadowCPU = p.cpuTime()-cpu0, env.cpuTime()-back0, env.cpuTimeOf(roleShadows)-shadow0
	sys1, sw1 := p.kernelWork()
	m.syscalls, m.switches = sys1-sys0, sw1-sw0
	_, m.peakRSS = p.memory()
	// Read before scraping: every request that reached the primary by now
	// passed the mirror, and was counted, before the scrape.
	after, err := env.primaryReceived()
	if err != nil {
		return m, err
	}
	m.reached = after - before
	if p.admin != nil {
		// A copy ending during the scrape has given back its in-flight
		// slot and is a moment from being counted: scrape again when the
		// count comes short, a few times, so that only a copy that is
		// never counted is reported.
		for range accountingScrapes {
			metrics, err := scrape(p.admin)
			if err != nil {
				return m, err
			}
			m.outcomes = metrics.outcomes()
			m.compares = metrics.byLabel("caddy_http_mirror_compare_total", "result")
			m.replicas = metrics.byLabel("caddy_http_mirror_replica_copies_total", "replica")
			m.inFlight = metrics.value("caddy_http_mirror_in_flight", nil)
			m.proxySched = metrics.histogramQuantile("go_sched_latencies_seconds", 0.99)
			if m.accounted() >= float64(m.reached) {
				break
			}
		}
		if ph.settle > 0 {
			m.settled = settle(p, portOf(shadow), ph.settle)
		}
	}
	return m, nil
}

// accountingScrapes is how many times measure scrapes /metrics while the
// copies it counts come short of the requests that passed through.
const accountingScrapes = 5

// accounted is the copies /metrics accounts for: counted, or in flight.
func (m measurement) accounted() float64 {
	n := m.inFlight
	for _, c := range m.outcomes {
		n += c
	}
	return n
}

// results holds every measurement of a scenario, by variant name.
type results map[string][]measurement

// interleave measures every variant reps times, in the order A B C A B C
// ..., so that drift in the machine spreads over all of them.
func interleave(cfg *config, env *environment, variants []variant, phaseOf func(variant) phase, sampleEvery time.Duration) (results, error) {
	res := results{}
	for rep := range cfg.reps {
		for _, v := range variants {
			m, err := measureLogged(cfg, env, v, phaseOf(v), sampleEvery, rep)
			if err != nil {
				return nil, err
			}
			res[v.name] = append(res[v.name], m)
		}
	}
	return res, nil
}

// measureLogged measures one variant once and logs what it measured.
func measureLogged(cfg *config, env *environment, v variant, ph phase, sampleEvery time.Duration, rep int) (measurement, error) {
	m, err := measure(cfg, env, v, ph, sampleEvery)
	if err != nil {
		return m, fmt.Errorf("%s: %v", v.name, err)
	}
	log.Printf("  %-28s rep %d: %8.0f req/s  p50 %7.2f ms  p99 %8.2f ms  errors %d%s%s",
		v.name, rep+1, m.rps(), m.quantileMs(50), m.quantileMs(99), m.errors, cancelledNote(m.load), windowsNote(m.load))
	return m, nil
}

// windowsNote names an open loop's three slowest windows, or "" for a
// closed loop.
func windowsNote(l load) string {
	if len(l.windows) == 0 {
		return ""
	}
	return "  slowest " + latencyWindow.String() + " windows at " + l.slowestWindows(3)
}

// cancelledNote says how many requests the load generator cut off itself,
// or "" when none.
func cancelledNote(l load) string {
	if l.cancelled == 0 {
		return ""
	}
	return fmt.Sprintf("  (%d cancelled by the load generator, unanswered %s after the phase ended; not errors)", l.cancelled, drainTimeout)
}

// median returns the median over the measurements of f.
func median(ms []measurement, f func(measurement) float64) float64 {
	vals := make([]float64, len(ms))
	for i, m := range ms {
		vals[i] = f(m)
	}
	return medianOf(vals)
}

// medianOf returns the median of xs, 0 for none.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	vals := slices.Sorted(slices.Values(xs))
	if len(vals)%2 == 1 {
		return vals[len(vals)/2]
	}
	return (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
}

// Accessors for median.
func rps(m measurement) float64        { return m.rps() }
func p50(m measurement) float64        { return m.quantileMs(50) }
func p99(m measurement) float64        { return m.quantileMs(99) }
func cpuPer1kMs(m measurement) float64 { return float64(m.cpuPer1k()) / float64(time.Millisecond) }
func errs(m measurement) float64       { return float64(m.errors) }

// perRequest divides a count by the requests completed.
func perRequest(count func(measurement) int64) func(measurement) float64 {
	return func(m measurement) float64 {
		if m.completed == 0 {
			return 0
		}
		return float64(count(m)) / float64(m.completed)
	}
}

// cpuShare is a process's CPU time as a share of one core over the phase.
func cpuShare(cpu func(measurement) time.Duration) func(measurement) float64 {
	return func(m measurement) float64 {
		if m.elapsed <= 0 {
			return 0
		}
		return float64(cpu(m)) / float64(m.elapsed)
	}
}

// problems lists what makes a Caddy measurement wrong rather than slow:
// errors seen by the client, copies the metrics do not account for, or no
// requests at all. These fail the run, in -quick mode too.
func (r results) problems(variants []variant) []string {
	var out []string
	for _, v := range variants {
		if v.server != "caddy" {
			continue
		}
		for i, m := range r[v.name] {
			where := fmt.Sprintf("%s (rep %d)", v.name, i+1)
			if m.completed == 0 {
				out = append(out, where+": no request completed")
			}
			if m.errors > 0 {
				out = append(out, fmt.Sprintf("%s: %d primary errors%s", where, m.errors, m.firstErrorNote()))
			}
			if v.copiesAll() && m.accounted() < float64(m.reached) {
				out = append(out, fmt.Sprintf("%s: /metrics accounts for %.0f copies (outcomes plus in flight), but %d requests passed through", where, m.accounted(), m.reached))
			}
		}
	}
	return out
}
