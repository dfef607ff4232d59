// Command bench measures what the mirror handler costs the primary: it
// builds the project's Caddy, starts its own primary and shadow backends on
// loopback, drives load through Caddy with and without a mirror (and through
// nginx's mirror module when nginx is installed), and writes RESULTS.md and
// PNG charts.
//
//	go run ./bench            # the full suite, about 30 minutes
//	go run ./bench -quick     # a smoke test of every scenario, as CI runs it
//	go run ./bench -soak 10m  # the soak: a steady load while the shadow flaps
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// config is the run's configuration, reported with the results.
type config struct {
	quick        bool
	reps         int
	phase        time.Duration // each measured load phase
	warmup       time.Duration
	memoryPhase  time.Duration
	primaryDelay time.Duration
	proxyCPUs    string // taskset list for the proxies; "" leaves them unpinned
	out          string
	scenarios    []string
	nginx        string            // path of nginx; "" when not used
	caddy        string            // path of the Caddy built for the run
	testBins     map[string]string // test binaries built for the run, by package ("." or "./compare")
	soak         soakConfig
	isolation    isolationConfig
	traceDir     string // -trace-dir: where to put a runtime/trace of each Caddy, when set
}

// isolationConfig is scenario 1's own length, which its tail needs more
// of than the other scenarios.
type isolationConfig struct {
	reps  int           // interleaved repetitions
	phase time.Duration // each variant's measured phase
	// warmup is how long each run is warmed up, at the phase's rate,
	// before it is measured: long enough for a fresh mirror's limit to
	// have learnt the shadow and the connections its first queue opened
	// to have closed, so that the phase measures the mirror as it runs,
	// not as it starts
	warmup time.Duration
	// only, when not empty, keeps the variants named "caddy mirror, "
	// and one of these (the baseline always runs).
	only []string
}

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("bench: ")
	var cfg config
	var scenarios string
	flag.BoolVar(&cfg.quick, "quick", false, "smoke test: short phases, one repetition, results in a temporary folder unless -out is set")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of each measurement, interleaved; medians are reported")
	flag.DurationVar(&cfg.phase, "phase", 5*time.Second, "length of each measured load phase")
	flag.DurationVar(&cfg.memoryPhase, "memory-phase", 60*time.Second, "length of the memory-bound phase")
	flag.DurationVar(&cfg.primaryDelay, "primary-delay", time.Millisecond, "time the primary takes to answer")
	flag.StringVar(&cfg.proxyCPUs, "proxy-cpus", "", "CPUs to pin Caddy and nginx to, as taskset -c takes them (default: not pinned)")
	flag.StringVar(&cfg.out, "out", "", "folder for RESULTS.md and the charts (default: bench/, or a temporary folder with -quick)")
	flag.StringVar(&scenarios, "scenarios", "1,2,3,4,5,6,7,8,9,10,11,12,13,14", "scenarios to run, by number")
	flag.StringVar(&cfg.traceDir, "trace-dir", "", "take a 4 s runtime/trace of each Caddy from 30% into each open-loop phase of scenarios 1 and 14, into this folder (read it with go run ./bench/tracewaits; tracing slows Caddy, so the figures of such a run are for diagnosis)")
	noNginx := flag.Bool("no-nginx", false, "skip nginx even when it is installed")
	var soak soakConfig
	flag.DurationVar(&soak.duration, "soak", 0, "instead of the scenarios, soak the mirror this long while the shadow flaps, and write SOAK.md and soak.png")
	flag.DurationVar(&soak.every, "flap-every", 30*time.Second, "with -soak: how long the shadow keeps each behaviour")
	flag.Float64Var(&soak.rate, "soak-rate", 200, "with -soak: requests per second")
	flag.IntVar(&cfg.isolation.reps, "isolation-reps", 0, "repetitions of scenario 1 (default: -reps)")
	flag.DurationVar(&cfg.isolation.phase, "isolation-phase", 0, "length of scenario 1's phases (default: -phase)")
	flag.DurationVar(&cfg.isolation.warmup, "isolation-warmup", isolationWarmup, "warm-up of scenario 1's runs, at the phase's rate (with -quick: 200ms)")
	isolationOnly := flag.String("isolation-only", "", "scenario 1's variants to run, named as after 'caddy mirror, ' and separated by ';', such as 'fast shadow;slow shadow;hanging shadow' (default: every variant; the baseline always runs)")
	backendsRole := flag.String("backends", "", "internal: serve the backends of a role, primary or shadows, for a parent bench process")
	loadgenOnly := flag.Bool("loadgen", false, "internal: generate one phase's load for a parent bench process")
	flag.Parse()
	if *isolationOnly != "" {
		cfg.isolation.only = strings.Split(*isolationOnly, ";")
	}
	if *loadgenOnly {
		if err := runLoadgen(); err != nil {
			log.Fatalf("load generator: %v", err)
		}
		return
	}
	if *backendsRole != "" {
		if err := serveBackends(*backendsRole, cfg.primaryDelay); err != nil {
			log.Fatalf("backends: %v", err)
		}
		return
	}
	if cfg.traceDir != "" {
		if err := os.MkdirAll(cfg.traceDir, 0o755); err != nil {
			log.Fatalf("-trace-dir: %v", err)
		}
	}
	cfg.scenarios = strings.Split(scenarios, ",")
	cfg.warmup = 500 * time.Millisecond
	if cfg.quick {
		cfg.reps, cfg.phase, cfg.memoryPhase, cfg.warmup = 1, time.Second, 3*time.Second, 200*time.Millisecond
		// scenario 1 has some twenty variants: half a second each
		cfg.isolation.reps, cfg.isolation.phase, cfg.isolation.warmup = 1, 500*time.Millisecond, cfg.warmup
	}
	if cfg.isolation.reps <= 0 {
		cfg.isolation.reps = cfg.reps
	}
	if cfg.isolation.phase <= 0 {
		cfg.isolation.phase = cfg.phase
	}
	cfg.soak = soak
	if err := run(&cfg, *noNginx); err != nil {
		log.Fatalf("FAILED: %v", err)
	}
}

func run(cfg *config, noNginx bool) error {
	if _, err := os.Stat("cmd/caddy"); err != nil {
		return fmt.Errorf("run from the repository root (go run ./bench): %v", err)
	}
	if cfg.out == "" {
		cfg.out = "bench"
		if cfg.quick {
			dir, err := os.MkdirTemp("", "bench-quick-")
			if err != nil {
				return err
			}
			cfg.out = dir
		}
	}
	// scenarios write their charts as they finish, before the report
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	if path, err := exec.LookPath("nginx"); err == nil && !noNginx {
		cfg.nginx = path
	} else if !noNginx {
		log.Printf("nginx is not installed; its column is left out (apt-get install nginx)")
	}

	bin, err := os.MkdirTemp("", "bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := buildAll(cfg, bin); err != nil {
		return err
	}

	env, err := startBackends(cfg.primaryDelay)
	if err != nil {
		return err
	}
	defer env.close()

	if cfg.soak.duration > 0 {
		log.Printf("soak: %s at %.0f req/s, the shadow flapping every %s", cfg.soak.duration, cfg.soak.rate, cfg.soak.every)
		return runSoak(cfg, env, cfg.soak)
	}
	rep := &report{cfg: cfg, started: time.Now()}
	for _, s := range allScenarios {
		if !slices.Contains(cfg.scenarios, s.id) && !(s.id == "2" && slices.Contains(cfg.scenarios, "3")) {
			continue
		}
		log.Printf("scenario %s: %s", s.id, s.title)
		secs, err := s.run(cfg, env)
		if err != nil {
			return fmt.Errorf("scenario %s (%s): %v", s.id, s.title, err)
		}
		rep.sections = append(rep.sections, secs...)
	}
	if err := rep.write(); err != nil {
		return err
	}
	log.Printf("wrote %s", filepath.Join(cfg.out, "RESULTS.md"))
	if problems := rep.problems(); len(problems) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	log.Printf("every scenario completed with no primary errors and every copy accounted for")
	return nil
}

// benchPackages are the packages whose Go benchmarks scenarios 7 and 8
// run, by scenario.
var benchPackages = map[string]string{"7": ".", "8": "./compare"}

// buildAll builds, into bin, the Caddy under test and the test binaries
// of the packages whose benchmarks the selected scenarios run, at the same
// time: each is mostly a link, which uses one core.
func buildAll(cfg *config, bin string) error {
	cfg.caddy = filepath.Join(bin, "caddy")
	cfg.testBins = map[string]string{}
	builds := map[string]*exec.Cmd{"./cmd/caddy": exec.Command("go", "build", "-o", cfg.caddy, "./cmd/caddy")}
	for id, pkg := range benchPackages {
		if slices.Contains(cfg.scenarios, id) {
			name := "mirror.test" // the root package's, as go test -c names it
			if pkg != "." {
				name = filepath.Base(pkg) + ".test"
			}
			cfg.testBins[pkg] = filepath.Join(bin, name)
			builds[pkg+" (its tests)"] = exec.Command("go", "test", "-c", "-o", cfg.testBins[pkg], pkg)
		}
	}
	log.Printf("building Caddy from ./cmd/caddy, and the test binaries of %d package(s)", len(cfg.testBins))
	errs := make(chan error, len(builds))
	for what, cmd := range builds {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		go func() {
			if err := cmd.Run(); err != nil {
				errs <- fmt.Errorf("building %s: %v", what, err)
				return
			}
			errs <- nil
		}()
	}
	var first error
	for range builds {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// machine describes where the run happened.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.Version())
}
