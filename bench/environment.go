package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// environment is the backends every scenario uses. They run in a child
// process, so that a shadow holding a thousand hung connections cannot
// slow the load generator through this process's scheduler or GC.
type environment struct {
	primary  string            // host:port
	shadows  map[string]string // host:port by shadow kind
	control  string            // the child's control endpoint
	child    *exec.Cmd
	stdin    io.Closer
	capacity float64 // the baseline's req/s on one connection, once measured
}

// backendAddrs is what the child reports when it is ready.
type backendAddrs struct {
	Primary string            `json:"primary"`
	Shadows map[string]string `json:"shadows"`
	Control string            `json:"control"`
}

// startBackends starts this program again with -backends and reads the
// addresses it serves on.
func startBackends(primaryDelay time.Duration) (*environment, error) {
	child := exec.Command(os.Args[0], "-backends", "-primary-delay", primaryDelay.String())
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := child.Start(); err != nil {
		return nil, err
	}
	var addrs backendAddrs
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &addrs)
	}
	if err != nil {
		_ = child.Process.Kill()
		return nil, fmt.Errorf("starting the backends: %v", err)
	}
	return &environment{primary: addrs.Primary, shadows: addrs.Shadows, control: addrs.Control, child: child, stdin: stdin}, nil
}

// controlClient is the client of the backends' control endpoint.
var controlClient = &http.Client{Timeout: 30 * time.Second}

// primaryReceived returns how many requests the primary has received.
func (e *environment) primaryReceived() (int64, error) {
	url := "http://" + e.control + "/received"
	body, err := getURL(controlClient, url, "text/plain")
	if err != nil {
		return 0, fmt.Errorf("asking the backends how many requests the primary received: %v", err)
	}
	n, err := strconv.ParseInt(string(body), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %v; the body begins %q", url, err, excerpt(body))
	}
	return n, nil
}

// setFlapping switches the flapping shadow to mode: fast, slow, hanging or
// down.
func (e *environment) setFlapping(mode string) error {
	url := "http://" + e.control + "/flapping?mode=" + mode
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	if _, err := fetch(controlClient, req, url, ""); err != nil {
		return fmt.Errorf("setting the flapping shadow to %s: %v", mode, err)
	}
	return nil
}

// cpuTime is the user plus system time the backends have used.
func (e *environment) cpuTime() time.Duration {
	return processCPU(e.child.Process.Pid)
}

// close stops the child: it exits when its standard input closes.
func (e *environment) close() {
	e.stdin.Close()
	_ = e.child.Wait()
}

// serveBackends is the child's side: it starts the primary, every kind of
// shadow and a control endpoint, reports their addresses on standard
// output, and serves until standard input closes.
func serveBackends(primaryDelay time.Duration) error {
	primary, err := newPrimary(primaryDelay)
	if err != nil {
		return err
	}
	addrs := backendAddrs{Primary: primary.addr, Shadows: map[string]string{}}
	shadows := map[string]*backend{}
	for _, kind := range shadowKinds {
		s, err := newShadow(kind)
		if err != nil {
			return fmt.Errorf("the %s shadow: %v", kind, err)
		}
		addrs.Shadows[kind], shadows[kind] = s.addr, s
	}
	flapping, err := newFlappingShadow()
	if err != nil {
		return err
	}
	addrs.Shadows[shadowFlapping] = flapping.addr
	control, err := serve(controlHandler(primary, shadows, flapping))
	if err != nil {
		return err
	}
	addrs.Control = control.addr
	if err := json.NewEncoder(os.Stdout).Encode(addrs); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
