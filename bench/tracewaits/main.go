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

// span is one span of a goroutine: waiting for a P, in a system call or
// running.
type span struct {
	g     trace.GoID
	d     time.Duration
	at    trace.Time
	stack string
}

// spans collects one kind of span, by goroutine.
type spans struct {
	open map[trace.GoID]span
	done []span
}

func newSpans() *spans { return &spans{open: map[trace.GoID]span{}} }

// begin opens g's span at t.
func (s *spans) begin(g trace.GoID, t trace.Time, stack string) {
	s.open[g] = span{g: g, at: t, stack: stack}
}

// end closes g's span at t, if one is open; stack, when not empty,
// replaces the one it began with.
func (s *spans) end(g trace.GoID, t trace.Time, stack string) {
	sp, ok := s.open[g]
	if !ok {
		return
	}
	delete(s.open, g)
	sp.d = t.Sub(sp.at)
	if stack != "" {
		sp.stack = stack
	}
	s.done = append(s.done, sp)
}

// print prints the n longest spans after a title line, times from start.
func (s *spans) print(title string, n int, start trace.Time) {
	sort.Slice(s.done, func(i, j int) bool { return s.done[i].d > s.done[j].d })
	var over1, over3 int
	for _, sp := range s.done {
		if sp.d > time.Millisecond {
			over1++
		}
		if sp.d > 3*time.Millisecond {
			over3++
		}
	}
	fmt.Printf("%s: %d, over 1 ms: %d, over 3 ms: %d; the longest:\n", title, len(s.done), over1, over3)
	for _, sp := range s.done[:min(n, len(s.done))] {
		fmt.Printf("  %6.2f ms at %7.1f ms g%d %s\n", float64(sp.d)/1e6, float64(sp.at.Sub(start))/1e6, sp.g, sp.stack)
	}
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
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run reads the trace at path and prints its spans and mark phases.
func run(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return err
	}
	waits, syscalls, runs := newSpans(), newSpans(), newSpans()
	var start, end, markStart trace.Time
	var marks []string
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
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
			if from == trace.GoSyscall {
				syscalls.end(g, ev.Time(), "")
			}
			if from == trace.GoRunning && to != trace.GoRunning {
				runs.end(g, ev.Time(), stackStr(ev.Stack()))
			}
			switch to {
			case trace.GoSyscall:
				syscalls.begin(g, ev.Time(), stackStr(ev.Stack()))
			case trace.GoRunnable:
				waits.begin(g, ev.Time(), stackStr(ev.Stack()))
			case trace.GoRunning:
				waits.end(g, ev.Time(), "")
				runs.begin(g, ev.Time(), "")
			}
		case trace.EventRangeBegin:
			if ev.Range().Name == "GC concurrent mark phase" {
				markStart = ev.Time()
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == "GC concurrent mark phase" && markStart != 0 {
				marks = append(marks, fmt.Sprintf("at %.0f ms for %.1f ms", float64(markStart.Sub(start))/1e6, float64(ev.Time().Sub(markStart))/1e6))
			}
		}
	}
	fmt.Printf("trace of %.1f s; %d GC mark phases: %s\n", float64(end.Sub(start))/1e9, len(marks), strings.Join(marks, ", "))
	waits.print("waits for a P", 15, start)
	syscalls.print("system calls", 10, start)
	runs.print("runs", 10, start)
	return nil
}
