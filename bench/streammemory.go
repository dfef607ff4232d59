package main

import (
	"bytes"
	"fmt"
	"net/http"
	"time"
)

// The mirror's defaults that bound a streamed copy's memory (README,
// "Memory"), and the adaptive limit's starting value (README, "Adaptive
// concurrency").
const (
	defaultMaxInFlight  = 1024
	defaultMaxBodySize  = 1 << 20
	defaultStreamWindow = 4 << 20
	adaptiveStartLimit  = 20
)

// streamMemoryLoad is scenario 12's load: 64 uploaders of 64 MiB, or in
// -quick, where the whole scenario must take seconds, 16 of 16 MiB (still
// sixteen times max_body_size, so every copy is streamed).
func streamMemoryLoad(cfg *config) (uploaders, size int) {
	if cfg.quick {
		return 16, 16 << 20
	}
	return 64, 64 << 20
}

// streamedMemory is scenario 12: the memory bound of streamed copies, with
// the mirror's defaults, many concurrent large uploads and a shadow that
// takes every body and never answers.
func streamedMemory(cfg *config, env *environment) ([]section, error) {
	uploaders, size := streamMemoryLoad(cfg)
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	variants := []variant{
		caddyBaseline,
		{name: "caddy mirror, hanging shadow, defaults", server: "caddy", mirror: mirrorTo(shadowHanging)},
	}
	if cfg.nginx != "" {
		variants = append(variants, variant{name: "nginx proxy_pass", server: "nginx"},
			variant{name: "nginx mirror, hanging shadow", server: "nginx", mirror: mirrorTo(shadowHanging)})
	}
	variants = forQuick(cfg, variants)
	// One long run each: the point is the shape of RSS over time.
	one := *cfg
	one.reps = 1
	res, err := interleave(&one, env, variants, func(variant) phase {
		return phase{conns: uploaders, method: http.MethodPost, body: body, duration: cfg.memoryPhase}
	}, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	perCopy := int64(defaultMaxBodySize + defaultStreamWindow)
	documented, started := defaultMaxInFlight*perCopy, adaptiveStartLimit*perCopy
	quick := ""
	if cfg.quick {
		n, size := streamMemoryLoad(&config{})
		quick = fmt.Sprintf(" (-quick; the full run has %d of %d MiB)", n, size>>20)
	}
	sec := section{
		id: "12", title: "Peak RSS with streamed uploads",
		setup: fmt.Sprintf("A hanging shadow (it reads every body, then never answers), %d concurrent uploaders of %d MiB bodies%s, closed loop, for %s, "+
			"the mirror with its defaults: max_body_size 1 MiB, stream_window 4 MiB, large_bodies stream, max_in_flight 1024, the adaptive concurrency limit. "+
			"Every copy is streamed. nginx, when installed, reads each whole body to a file in its client_body_temp_path before it proxies it, "+
			"with or without the mirror, so its RSS does not grow with the body; its mirror holds the client's keep-alive connection until the shadow's 10 s timeout. "+
			"RSS (VmRSS, VmHWM) from /proc; goroutines from Caddy's go_goroutines.",
			uploaders, size>>20, quick, cfg.memoryPhase),
		target: fmt.Sprintf("Peak RSS over the baseline's within the documented bound, max_in_flight × (max_body_size + stream_window) = %d × %s = %s, and flat (the second half's highest within 10%% + 16 MiB of the first half's).",
			defaultMaxInFlight, mib(perCopy), mib(documented)),
	}
	sec.memoryTable(res, variants)
	base, mir := res[variants[0].name][0], res[variants[1].name][0]
	extra := mir.peakRSS - base.peakRSS
	sec.tables = append(sec.tables, fmt.Sprintf("Caddy's peak RSS with the mirror is %s above the baseline's. The documented bound assumes %d copies each "+
		"holding a full window; streamed copies hold a slot under the adaptive limit but do not adapt it, so a hanging shadow holds at most its starting limit of %d of them, so in practice "+
		"%d × %s = %s of copies' buffers (before the Go runtime's own headroom): the measured extra is %.0f%% of that.\n",
		mib(extra), defaultMaxInFlight, adaptiveStartLimit, adaptiveStartLimit, mib(perCopy), mib(started), 100*float64(extra)/float64(started)))
	if n := mir.outcomes["cut_off_slow"]; n > 0 {
		sec.tables = append(sec.tables, fmt.Sprintf("%.0f copies were cut off (cut_off_slow) before the shadow could hang: sharing the cores with "+
			"the uploads, it fell a whole window behind, so those copies held full windows, the worst case per copy.\n", n))
	}
	sec.verdict(extra <= documented, "peak RSS %s above the baseline's (bound %s)", mib(extra), mib(documented))
	sec.flatVerdict(mir)
	sec.problems = res.problems(variants)
	return []section{sec}, nil
}
