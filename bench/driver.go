package main

import (
	"strings"
	"time"
)

// driver applies a phase's load to a proxy, warmed up when it is
// started: in this process, or in a load generator process of its own.
type driver interface {
	// run applies the measured phase and returns its load and the
	// scheduling latencies of the process that generated it.
	run() (load, schedHistogram, error)
	close()
}

// phaseURL is the URL a phase's requests go to on a proxy whose front is
// front ("http://host:port/").
func phaseURL(front string, ph phase) string {
	if ph.path == "" {
		return front
	}
	return strings.TrimSuffix(front, "/") + ph.path
}

// phaseWant is the body a phase's requests must get back.
func phaseWant(ph phase) []byte {
	if ph.want != nil {
		return ph.want
	}
	return primaryBody
}

// startDriver starts the phase's load generator against front and warms
// the proxy up with it.
func startDriver(front string, ph phase, warmup time.Duration) (driver, error) {
	url := phaseURL(front, ph)
	if ph.ownProcess {
		spec := loadSpec{URL: url, Method: ph.method, Body: ph.body, Want: phaseWant(ph), Conns: ph.conns,
			Open: ph.open, Rate: ph.rate, Duration: ph.duration, Grace: openLoopGrace, Warmup: warmup}
		g, err := startLoadgen(spec, time.Now().Add(warmup+loadgenStartTimeout))
		if err != nil {
			return nil, err
		}
		return &processDriver{g: g, ph: ph}, nil
	}
	q := newRequester(url, ph.conns, ph.method, ph.body, phaseWant(ph))
	warmUp(q, ph.open, ph.rate, ph.conns, warmup)
	return &localDriver{q: q, ph: ph}, nil
}

// openLoopGrace is how long past its phase an open loop may still send.
const openLoopGrace = 2 * time.Second

// loadgenStartTimeout bounds how long a load generator process may take
// to start, beyond its warm-up, and to report, beyond its phase and drain.
const loadgenStartTimeout = 30 * time.Second

// localDriver generates the load in this process.
type localDriver struct {
	q  *requester
	ph phase
}

func (d *localDriver) run() (load, schedHistogram, error) {
	before := readSchedLatencies()
	var l load
	if d.ph.open {
		l = openLoop(d.q, d.ph.rate, d.ph.conns, d.ph.duration, openLoopGrace, nil)
	} else {
		l = closedLoop(d.q, d.ph.conns, d.ph.duration)
	}
	return l, readSchedLatencies().since(before), nil
}

func (d *localDriver) close() { d.q.close() }

// processDriver generates the load in a load generator process.
type processDriver struct {
	g  *loadgenProcess
	ph phase
}

func (d *processDriver) run() (load, schedHistogram, error) {
	return d.g.run(time.Now().Add(d.ph.duration + openLoopGrace + drainTimeout + loadgenStartTimeout))
}

func (d *processDriver) close() { d.g.close() }
