package main

import (
	"bytes"
	"os"
	"strings"
	"sync"
)

// outputTailLines is how many of a proxy's last lines of output an error
// message quotes.
const outputTailLines = 20

// outputWatcher is a proxy's standard output and error, line by line: it
// hands every line to read, passes on to this program's standard error the
// lines that show asks for, and keeps the last lines for error messages.
type outputWatcher struct {
	read func(line []byte)      // nil: none
	show func(line []byte) bool // nil: every line

	mu      sync.Mutex
	partial []byte   // a line not ended yet
	tail    []string // the last outputTailLines lines
}

// Write takes output as the process writes it, which need not be in
// whole lines.
func (w *outputWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(w.partial[:i+1])
		w.partial = w.partial[i+1:]
	}
}

// line handles one whole line, its newline included.
func (w *outputWatcher) line(line []byte) {
	if w.read != nil {
		w.read(line)
	}
	if w.show == nil || w.show(line) {
		_, _ = os.Stderr.Write(line)
	}
	w.tail = append(w.tail, strings.TrimRight(string(line), "\n"))
	if len(w.tail) > outputTailLines {
		w.tail = w.tail[1:]
	}
}

// lastLines returns the last lines of output, indented for an error
// message, or a note that there were none.
func (w *outputWatcher) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := w.tail
	if len(w.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(w.partial))
	}
	if len(lines) == 0 {
		return "\n    (no output)"
	}
	return "\n    " + strings.Join(lines, "\n    ")
}
