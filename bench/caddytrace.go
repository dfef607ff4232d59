package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// caddyTraceLength is how long -trace-dir traces each Caddy.
const caddyTraceLength = 4 * time.Second

// traceCaddy, when dir is set, takes a runtime/trace of p through its
// admin endpoint (/debug/pprof/trace) from 30% into the phase, for
// caddyTraceLength, into dir/<variant>-<rep>.trace, to be read with
// bench/tracewaits or go tool trace, for the phases with a load generator
// of their own (scenarios 1 and 14). It returns at once. Tracing costs
// Caddy some of its CPU: a traced run's figures are for diagnosis, not
// for the tables.
func traceCaddy(dir string, p *proxyProcess, v variant, ph phase) {
	if dir == "" || p.admin == nil || !ph.ownProcess {
		return
	}
	go func() {
		time.Sleep(ph.duration * 3 / 10) // pacing the capture, not synchronising
		body, err := p.admin.get(fmt.Sprintf("/debug/pprof/trace?seconds=%d", int(caddyTraceLength/time.Second)), "")
		if err != nil {
			log.Printf("  tracing %s: %v", v.name, err)
			return
		}
		name := strings.NewReplacer(" ", "_", ",", "", "/", "_").Replace(v.name)
		path := filepath.Join(dir, fmt.Sprintf("%s-%s.trace", name, time.Now().Format("150405")))
		if err := os.WriteFile(path, body, 0o644); err != nil {
			log.Printf("  tracing %s: %v", v.name, err)
		}
	}()
}
