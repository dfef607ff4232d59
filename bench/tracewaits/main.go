// Command tracewaits reads a Go execution trace (Caddy's
// /debug/pprof/trace) and prints what `go tool trace -pprof=sched` sums
// away: the longest waits of goroutines for a P, the longest system calls
// and the longest runs, each with its stack and when it happened, and the
// garbage collector's mark phases. The primary's tail is made of a few
// long waits, not of the total.
//
//	go run ./bench/tracewaits trace.out
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// wait is one span of a goroutine: waiting, in a system call or running.
type wait struct {
	g     trace.GoID
	d     time.Duration
	at    trace.Time
	stack string
}

// stackStr is the first four frames of s outside the runtime.
func stackStr(s trace.Stack) string {
	var b []string
	for f := range s.Frames() {
		fn := f.Func
		if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/") || strings.HasPrefix(fn, "sync.") {
			continue
		}
		b = append(b, fn[strings.LastIndex(fn, "/")+1:])
		if len(b) >= 4 {
			break
		}
	}
	return strings.Join(b, " < ")
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tracewaits trace.out")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runnableSince := map[trace.GoID]trace.Time{}
	runnableStack := map[trace.GoID]string{}
	var waits []wait
	var start, end trace.Time
	var gcStart trace.Time
	var gcs []string
	running := map[trace.GoID]trace.Time{}
	sysSince := map[trace.GoID]trace.Time{}
	sysStack := map[trace.GoID]string{}
	var syscalls []wait
	var longRuns []wait
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if start == 0 {
			start = ev.Time()
		}
		end = ev.Time()
		switch ev.Kind() {
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if to == trace.GoSyscall {
				sysSince[g] = ev.Time()
				sysStack[g] = stackStr(ev.Stack())
			}
			if from == trace.GoSyscall {
				if t, ok := sysSince[g]; ok {
					syscalls = append(syscalls, wait{g, ev.Time().Sub(t), t, sysStack[g]})
					delete(sysSince, g)
				}
			}
			if to == trace.GoRunnable {
				runnableSince[g] = ev.Time()
				runnableStack[g] = stackStr(ev.Stack())
			}
			if to == trace.GoRunning {
				if t, ok := runnableSince[g]; ok {
					waits = append(waits, wait{g, ev.Time().Sub(t), t, runnableStack[g]})
					delete(runnableSince, g)
				}
				running[g] = ev.Time()
			}
			if from == trace.GoRunning && to != trace.GoRunning {
				if t, ok := running[g]; ok {
					longRuns = append(longRuns, wait{g, ev.Time().Sub(t), t, stackStr(ev.Stack())})
					delete(running, g)
				}
			}
		case trace.EventRangeBegin:
			if ev.Range().Name == "GC concurrent mark phase" {
				gcStart = ev.Time()
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == "GC concurrent mark phase" && gcStart != 0 {
				gcs = append(gcs, fmt.Sprintf("%.0fms+%.1f", float64(gcStart.Sub(start))/1e6, float64(ev.Time().Sub(gcStart))/1e6))
			}
		}
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i].d > waits[j].d })
	fmt.Printf("trace %.1fs, %d runnable waits; GC marks: %d %v\n", float64(end.Sub(start))/1e9, len(waits), len(gcs), gcs)
	var over1, over3 int
	for _, w := range waits {
		if w.d > time.Millisecond {
			over1++
		}
		if w.d > 3*time.Millisecond {
			over3++
		}
	}
	fmt.Printf("waits > 1ms: %d, > 3ms: %d\n", over1, over3)
	for _, w := range waits[:min(15, len(waits))] {
		fmt.Printf("  %6.2fms at %7.1fms g%d %s\n", float64(w.d)/1e6, float64(w.at.Sub(start))/1e6, w.g, w.stack)
	}
	sort.Slice(syscalls, func(i, j int) bool { return syscalls[i].d > syscalls[j].d })
	fmt.Printf("syscalls: %d; longest:\n", len(syscalls))
	for _, w := range syscalls[:min(10, len(syscalls))] {
		fmt.Printf("  %6.2fms at %7.1fms g%d %s\n", float64(w.d)/1e6, float64(w.at.Sub(start))/1e6, w.g, w.stack)
	}
	sort.Slice(longRuns, func(i, j int) bool { return longRuns[i].d > longRuns[j].d })
	fmt.Println("longest runs:")
	for _, w := range longRuns[:min(10, len(longRuns))] {
		fmt.Printf("  %6.2fms at %7.1fms g%d %s\n", float64(w.d)/1e6, float64(w.at.Sub(start))/1e6, w.g, w.stack)
	}
}
