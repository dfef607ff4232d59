package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The load generator can run in a process of its own (-loadgen), apart
// from this program, which starts and samples the proxy, and from the
// backends child: its goroutines, garbage collector and timers then
// share nothing with either but the CPUs.

// loadSpec is what a load generator process is asked to do.
type loadSpec struct {
	URL      string        `json:"url"`
	Method   string        `json:"method"`
	Body     []byte        `json:"body,omitempty"`
	Want     []byte        `json:"want"` // the primary's body
	Conns    int           `json:"conns"`
	Open     bool          `json:"open"`           // open loop at Rate; otherwise closed loop
	Rate     float64       `json:"rate,omitempty"` // requests per second
	Duration time.Duration `json:"duration"`
	Grace    time.Duration `json:"grace"` // open loop: how long past Duration requests may still be sent
	Warmup   time.Duration `json:"warmup"`
}

// loadReport is a load as it travels from a load generator process: its
// latencies as an encoded HdrHistogram, with the generator's own
// scheduling latencies over the phase.
type loadReport struct {
	Sent       int             `json:"sent"`
	Completed  int             `json:"completed"`
	Errors     int             `json:"errors"`
	Cancelled  int             `json:"cancelled"`
	FirstError string          `json:"first_error,omitempty"`
	Elapsed    time.Duration   `json:"elapsed"`
	Latency    string          `json:"latency"` // HdrHistogram V2, compressed, base64
	Windows    []time.Duration `json:"windows,omitempty"`
	Sched      schedHistogram  `json:"sched"`
}

// loadgenMessage is one line a load generator process writes.
type loadgenMessage struct {
	Ready  bool        `json:"ready,omitempty"` // warmed up; waiting for a line on its standard input
	Report *loadReport `json:"report,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// reportOf encodes a load for the parent.
func reportOf(l load, sched schedHistogram) (loadReport, error) {
	enc, err := l.latency.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return loadReport{}, err
	}
	return loadReport{Sent: l.sent, Completed: l.completed, Errors: l.errors, Cancelled: l.cancelled,
		FirstError: l.firstError, Elapsed: l.elapsed, Latency: string(enc), Windows: l.windows, Sched: sched}, nil
}

// load decodes a report back into a load.
func (r loadReport) load() (load, error) {
	h, err := hdrhistogram.Decode([]byte(r.Latency))
	if err != nil {
		return load{}, fmt.Errorf("decoding the load generator's latencies: %v", err)
	}
	return load{sent: r.Sent, completed: r.Completed, errors: r.Errors, cancelled: r.Cancelled,
		firstError: r.FirstError, elapsed: r.Elapsed, latency: h, windows: r.Windows}, nil
}

// serveLoadgen is a load generator process's side: it reads a loadSpec
// line from in, warms up, says it is ready, waits for a line, runs the
// phase and writes its report.
func serveLoadgen(in io.Reader, out io.Writer) error {
	lines := bufio.NewReader(in)
	line, err := lines.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the load's spec: %v", err)
	}
	var spec loadSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("reading the load's spec: %v", err)
	}
	q := newRequester(spec.URL, spec.Conns, spec.Method, spec.Body, spec.Want)
	defer q.close()
	warmUp(q, spec.Open, spec.Rate, spec.Conns, spec.Warmup)
	enc := json.NewEncoder(out)
	if err := enc.Encode(loadgenMessage{Ready: true}); err != nil {
		return err
	}
	if _, err := lines.ReadBytes('\n'); err != nil {
		return fmt.Errorf("waiting for the start: %v", err)
	}
	before := readSchedLatencies()
	var l load
	if spec.Open {
		l = openLoop(q, spec.Rate, spec.Conns, spec.Duration, spec.Grace, nil)
	} else {
		l = closedLoop(q, spec.Conns, spec.Duration)
	}
	report, err := reportOf(l, readSchedLatencies().since(before))
	if err != nil {
		return err
	}
	return enc.Encode(loadgenMessage{Report: &report})
}

// loadgenProcess is a running load generator process.
type loadgenProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan []byte // its standard output, line by line; closed at its end
}

// startLoadgen starts this program again with -loadgen, sends it spec and
// waits until it has warmed up, or deadline.
func startLoadgen(spec loadSpec, deadline time.Time) (*loadgenProcess, error) {
	cmd := exec.Command(os.Args[0], "-loadgen")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the load generator: %v", err)
	}
	g := &loadgenProcess{cmd: cmd, stdin: stdin, lines: make(chan []byte)}
	go g.readLines(stdout)
	if err := g.send(spec); err != nil {
		g.close()
		return nil, err
	}
	if _, err := g.await(deadline, "warming up"); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// readLines passes the process's output on, line by line.
func (g *loadgenProcess) readLines(stdout io.Reader) {
	defer close(g.lines)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		g.lines <- append([]byte(nil), sc.Bytes()...)
	}
}

// send writes v as a line of JSON to the process.
func (g *loadgenProcess) send(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := g.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing to the load generator: %v", err)
	}
	return nil
}

// await waits for the process's next message until deadline; what says
// in an error what it was doing.
func (g *loadgenProcess) await(deadline time.Time, what string) (loadgenMessage, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case line, ok := <-g.lines:
		var msg loadgenMessage
		if !ok {
			return msg, fmt.Errorf("the load generator exited while %s", what)
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return msg, fmt.Errorf("the load generator, %s, wrote %q: %v", what, excerpt(line), err)
		}
		if msg.Error != "" {
			return msg, fmt.Errorf("the load generator, %s: %s", what, msg.Error)
		}
		return msg, nil
	case <-timer.C:
		return loadgenMessage{}, fmt.Errorf("the load generator was still %s at its deadline", what)
	}
}

// run starts the measured phase and returns its load and the generator's
// scheduling latencies over it.
func (g *loadgenProcess) run(deadline time.Time) (load, schedHistogram, error) {
	if _, err := g.stdin.Write([]byte("go\n")); err != nil {
		return load{}, schedHistogram{}, fmt.Errorf("starting the load generator's phase: %v", err)
	}
	msg, err := g.await(deadline, "running the phase")
	if err == nil && msg.Report == nil {
		err = errors.New("the load generator sent no report")
	}
	if err != nil {
		return load{}, schedHistogram{}, err
	}
	l, err := msg.Report.load()
	return l, msg.Report.Sched, err
}

// close ends the process, killing it if it is still running, and waits
// for it.
func (g *loadgenProcess) close() {
	g.stdin.Close()
	_ = g.cmd.Process.Kill()
	for range g.lines {
	}
	_ = g.cmd.Wait()
}

// runLoadgen is the -loadgen process's main: it reports a failure as its
// last line, so that the parent can say what went wrong.
func runLoadgen() error {
	err := serveLoadgen(os.Stdin, os.Stdout)
	if err != nil {
		_ = json.NewEncoder(os.Stdout).Encode(loadgenMessage{Error: err.Error()})
	}
	return err
}
