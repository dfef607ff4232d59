package main

import (
	"fmt"
	"time"
)

// A variant with copies sent from beside is the control of a mirror
// variant: the same shadow gets the same requests at the same rate, but
// from a load generator process of its own instead of from Caddy, which
// only proxies. Every core the shadow and the copies' sender take is taken
// as it is with the mirror; what the mirror's variant shows beyond its
// control is what sending the copies from inside the primary's Caddy
// costs the primary.

// besideConns bounds the side load's connections: twice the copies a
// 200 ms shadow holds at the 1,000 requests a second of a 100 µs primary.
const besideConns = 400

// besideVariant is the control of a mirror to the shadow of kind.
func besideVariant(kind string) variant {
	return variant{name: "caddy reverse_proxy, " + kind + " shadow loaded beside", server: "caddy", beside: kind}
}

// besideBody is what a shadow of kind answers.
func besideBody(kind string) ([]byte, error) {
	switch kind {
	case shadowFast:
		return fastShadowBody, nil
	case shadowSlow:
		return slowShadowBody, nil
	}
	return nil, fmt.Errorf("no side load for the %s shadow", kind)
}

// besideLoad is a side load running beside a phase.
type besideLoad struct {
	g    *loadgenProcess
	done chan error
}

// startBeside starts v's side load, warmed up, or returns nil for a
// variant without one.
func startBeside(env *environment, v variant, ph phase, warmup time.Duration) (*besideLoad, error) {
	if v.beside == "" {
		return nil, nil
	}
	want, err := besideBody(v.beside)
	if err != nil {
		return nil, err
	}
	spec := loadSpec{URL: "http://" + env.shadows[v.beside] + "/", Method: ph.method, Want: want, Conns: besideConns,
		Open: true, Rate: ph.rate, Duration: ph.duration, Grace: openLoopGrace, Warmup: warmup}
	g, err := startLoadgen(spec, time.Now().Add(warmup+loadgenStartTimeout))
	if err != nil {
		return nil, fmt.Errorf("the side load: %v", err)
	}
	return &besideLoad{g: g}, nil
}

// run starts the side load's phase; wait returns how it went.
func (b *besideLoad) run(ph phase) {
	if b == nil {
		return
	}
	b.done = make(chan error, 1)
	go func() {
		l, _, err := b.g.run(time.Now().Add(ph.duration + openLoopGrace + drainTimeout + loadgenStartTimeout))
		if err == nil && l.errors > 0 {
			err = fmt.Errorf("%d of the side load's %d requests failed%s", l.errors, l.sent, l.firstErrorNote())
		}
		b.done <- err
	}()
}

// wait waits for the side load's phase, if it was started, to end, and
// stops its process; after the first call it returns nil.
func (b *besideLoad) wait() error {
	if b == nil || b.g == nil {
		return nil
	}
	var err error
	if b.done != nil {
		err = <-b.done
	}
	b.g.close()
	b.g = nil
	return err
}

// besideVerdict compares the mirror to v's shadow with v, its control:
// the mirror costs the primary nothing of its own when its p99 ratio is
// within a tenth of the control's.
func (ir isolationRuns) besideVerdict(sec *section, v variant) {
	mirror := variant{name: "caddy mirror, " + v.beside + " shadow", server: "caddy"}
	if _, ok := ir.res[mirror.name]; !ok {
		return
	}
	m, c := medianOf(ir.ratios(mirror, p99)), medianOf(ir.ratios(v, p99))
	sec.verdict(m <= c*1.1, "%s: the primary's p99 %.2f of the baseline with the mirror, %.2f with the same copies sent from beside Caddy (%s)",
		mirror.name, m, c, map[bool]string{true: "the mirror adds nothing of its own", false: "the mirror costs more than the copies themselves"}[m <= c*1.1])
}
