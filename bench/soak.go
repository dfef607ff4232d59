package main

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// soakConfig is the soak's part of the run's configuration.
type soakConfig struct {
	duration time.Duration // the whole soak
	every    time.Duration // how long the shadow keeps each behaviour
	rate     float64       // requests per second, open loop
}

// flapOrder is the order the soak's shadow goes through, over and over.
var flapOrder = []string{shadowFast, shadowSlow, shadowHanging, "down"}

// runSoak runs Caddy with the mirror at a steady rate for the soak's
// duration while the shadow flaps, samples its RSS and goroutines every
// second, and writes SOAK.md and soak.png to cfg.out.
func runSoak(cfg *config, env *environment, sc soakConfig) error {
	if err := env.setFlapping(shadowFast); err != nil {
		return err
	}
	const conns = 32
	p, err := startCaddy(cfg.caddy, cfg.proxyCPUs, env.primary, env.shadows[shadowFlapping], &mirrorConfig{shadow: shadowFlapping})
	if err != nil {
		return err
	}
	defer p.stop()
	body := bytes.Repeat([]byte("s"), 4<<10)
	q := newRequester(p.url, conns, http.MethodPost, body, primaryBody)
	defer q.close()

	// the readiness probe that startCaddy sent was copied too
	before, err := scrape(p.admin)
	if err != nil {
		return err
	}
	started := time.Now()
	obs := observe(p, env.shadows[shadowFlapping], time.Second)
	flapErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(sc.every)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-tick.C:
				mode := flapOrder[i%len(flapOrder)]
				log.Printf("soak: %s: the shadow is now %s", time.Since(started).Round(time.Second), mode)
				if err := env.setFlapping(mode); err != nil {
					flapErr <- err
					return
				}
			case <-stop:
				flapErr <- nil
				return
			}
		}
	}()
	l := openLoop(q, sc.rate, conns, sc.duration, 5*time.Second, nil)
	close(stop)
	if err := <-flapErr; err != nil {
		return err
	}
	if err := env.setFlapping(shadowFast); err != nil {
		return err
	}

	// Copies still in flight end within the 10 s timeout; then every
	// request sent must have exactly one outcome.
	var m metrics
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if m, err = scrape(p.admin); err != nil {
			return err
		}
		if m.value("caddy_http_mirror_in_flight", nil) == 0 || time.Now().After(deadline) {
			break
		}
	}
	samples := obs.finish()
	return writeSoak(cfg, sc, l, samples, before.outcomes(), m.outcomes())
}

// writeSoak writes the soak's report and chart, and fails when a target
// was missed.
func writeSoak(cfg *config, sc soakConfig, l load, samples []sample, before, outcomes map[string]float64) error {
	var counted float64
	names := make([]string, 0, len(outcomes))
	for name, n := range outcomes {
		n -= before[name]
		counted += n
		names = append(names, fmt.Sprintf("%s %.0f", name, n))
	}
	slices.Sort(names)

	var b strings.Builder
	fmt.Fprintf(&b, "# Soak\n\nMade by `go run ./bench -soak %s` on %s.\n\n", sc.duration, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %s.\n", machine())
	fmt.Fprintf(&b, "- Load: %.0f req/s, open loop, POST with 4 KiB bodies over 32 keep-alive connections, for %s, through Caddy with `reverse_proxy` and the mirror (defaults: max_in_flight 1024, timeout 10s) copying every request.\n", sc.rate, sc.duration)
	fmt.Fprintf(&b, "- The shadow changes every %s: %s, and round again. Down closes its listener and every connection, so copies are refused.\n", sc.every, strings.Join(flapOrder, " → "))
	fmt.Fprintf(&b, "- Sampled every second from /proc (VmRSS) and Caddy's go_goroutines.\n\n")

	cycle := sc.every * time.Duration(len(flapOrder))
	rows := [][]string{}
	var peaksRSS, peaksGor []float64
	for start := time.Duration(0); start < sc.duration; start += cycle {
		var rss int64
		var gor float64
		for _, s := range samples {
			if s.at >= start && s.at < start+cycle {
				rss, gor = max(rss, s.rss), max(gor, s.goroutines)
			}
		}
		peaksRSS, peaksGor = append(peaksRSS, float64(rss)), append(peaksGor, gor)
		rows = append(rows, []string{fmt.Sprintf("%s–%s", start, start+cycle), mib(rss), fmt.Sprintf("%.0f", gor)})
	}
	b.WriteString(mdTable([]string{"cycle", "peak RSS", "peak goroutines"}, rows))
	end := samples[len(samples)-1]
	fmt.Fprintf(&b, "\nAfter the load, once the copies in flight had ended: RSS %s, %.0f goroutines.\n\n", mib(end.rss), end.goroutines)

	var missed []string
	check := func(ok bool, format string, args ...any) {
		mark := "met"
		if !ok {
			mark = "**missed**"
			missed = append(missed, fmt.Sprintf(format, args...))
		}
		fmt.Fprintf(&b, "- %s: %s\n", mark, fmt.Sprintf(format, args...))
	}
	half := len(peaksRSS) / 2
	firstRSS, lastRSS := slices.Max(peaksRSS[:max(half, 1)]), slices.Max(peaksRSS[half:])
	firstGor, lastGor := slices.Max(peaksGor[:max(half, 1)]), slices.Max(peaksGor[half:])
	check(lastRSS <= firstRSS*1.1+16<<20, "RSS flat: highest cycle peak in the second half %s vs %s in the first (flat: within 10%% + 16 MiB)", mib(int64(lastRSS)), mib(int64(firstRSS)))
	check(lastGor <= firstGor*1.1+64, "goroutines flat: highest cycle peak in the second half %.0f vs %.0f in the first (flat: within 10%% + 64)", lastGor, firstGor)
	check(l.errors == 0, "primary errors: %d of %d requests%s", l.errors, l.sent, l.firstErrorNote())
	check(counted == float64(l.sent), "mirror outcomes add up to the requests sent: %.0f counted (%s) for %d sent", counted, strings.Join(names, ", "), l.sent)
	b.WriteString("\n![RSS and goroutines over the soak](soak.png)\n")

	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	rss, gor, err := memoryPlots(section{id: "Soak", title: "flapping shadow", memory: []memorySeries{{name: "caddy mirror, flapping shadow", samples: samples}}})
	if err != nil {
		return err
	}
	if err := savePanels(filepath.Join(cfg.out, "soak.png"), []*plot.Plot{rss, gor}, 8*vg.Inch, 3.5*vg.Inch); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "SOAK.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s", filepath.Join(cfg.out, "SOAK.md"))
	if len(missed) > 0 {
		return fmt.Errorf("soak missed %d target(s):\n  %s", len(missed), strings.Join(missed, "\n  "))
	}
	return nil
}
