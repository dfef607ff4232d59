package main

import (
	"math"
	"time"
)

// settleEvery is how often settle samples the proxy.
const settleEvery = 100 * time.Millisecond

// settleSteady is how many samples in a row must show the same goroutine
// count, give or take settleJitter, once no copy is in flight, for the
// proxy to have settled.
const settleSteady = 3

// settleJitter is how far apart two samples' goroutine counts may be and
// still count as the same: an idle Caddy's count moves by one from scrape
// to scrape (the scrape's own connection), and an exact match made most
// runs wait out their deadline.
const settleJitter = 2

// settledState is the proxy once its load has ended and its copies are
// gone, or as it was at the deadline.
type settledState struct {
	settled    bool          // no copy in flight, and the goroutines steady
	after      time.Duration // from the end of the load
	inFlight   float64
	rss        int64
	goroutines float64
	held       int // sockets to the shadow among the proxy's descriptors
}

// settle samples a Caddy every settleEvery after its load has ended until
// no copy is in flight and its goroutine count has stayed within
// settleJitter of the last sample's for settleSteady samples, or until
// within has passed, and returns its last sample.
func settle(p *proxyProcess, shadowPort int, within time.Duration) settledState {
	start := time.Now()
	var s settledState
	steady := 0
	for {
		m, err := scrape(p.admin)
		prev := s.goroutines
		if err == nil {
			s.inFlight, s.goroutines = m.value("caddy_http_mirror_in_flight", nil), m.value("go_goroutines", nil)
		}
		s.rss, _ = p.memory()
		s.held = socketsHeldTo(p.pids(), shadowPort)
		s.after = time.Since(start)
		if err == nil && s.inFlight == 0 && math.Abs(s.goroutines-prev) <= settleJitter {
			steady++
		} else {
			steady = 0
		}
		if steady >= settleSteady {
			s.settled = true
			return s
		}
		if s.after >= within {
			return s
		}
		time.Sleep(settleEvery) // polling another process, with a deadline
	}
}
