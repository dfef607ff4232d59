package main

import (
	"fmt"
	"strings"
)

// windowsTable shows where in each run the tail fell: the three slowest
// windows of latencyWindow, by when they began in the phase. A limit's
// ramp falls in the first second; a garbage collector's cycles, or a
// sampler's, recur all along.
func (ir isolationRuns) windowsTable(variants []variant) string {
	rows := [][]string{}
	for _, v := range isolationRows(variants, true) {
		var reps []string
		for _, m := range ir.res[v.name] {
			reps = append(reps, m.slowestWindows(3))
		}
		rows = append(rows, []string{v.name, strings.Join(reps, "; ")})
	}
	return fmt.Sprintf("Where the tail fell: the three slowest %s windows of each run, by when they began in the phase and the longest latency in each, repetitions separated by semicolons:\n\n", latencyWindow) +
		mdTable([]string{"variant", "slowest windows (at s: ms), each repetition"}, rows)
}
