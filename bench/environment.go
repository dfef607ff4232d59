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

// environment is the backends every scenario uses. They run in two
// child processes, the primary in one and every shadow in the other, as a
// primary and its shadow run on different machines in production: a
// shadow holding a thousand connections then slows neither the load
// generator nor the primary through their process's scheduler or garbage
// collector, and the primary's tail is the proxy's alone.
type environment struct {
	primary  string            // host:port
	shadows  map[string]string // host:port by shadow kind
	children map[string]*backendsChild
	capacity float64 // the baseline's req/s on one connection, once measured
}

// The two roles of a backends child.
const (
	rolePrimary = "primary"
	roleShadows = "shadows"
)

// backendsChild is one backends child process.
type backendsChild struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	control string // its control endpoint
}

// backendAddrs is what a child reports when it is ready.
type backendAddrs struct {
	Primary string            `json:"primary,omitempty"`
	Shadows map[string]string `json:"shadows,omitempty"`
	Control string            `json:"control"`
}

// startBackends starts a child for the primary and one for the shadows,
// and reads the addresses they serve on.
func startBackends(primaryDelay time.Duration) (*environment, error) {
	e := &environment{children: map[string]*backendsChild{}}
	for _, role := range []string{rolePrimary, roleShadows} {
		child, addrs, err := startBackendsChild(role, primaryDelay)
		if err != nil {
			e.close()
			return nil, err
		}
		e.children[role] = child
		if role == rolePrimary {
			e.primary = addrs.Primary
		} else {
			e.shadows = addrs.Shadows
		}
	}
	return e, nil
}

// startBackendsChild starts this program again with -backends role.
func startBackendsChild(role string, primaryDelay time.Duration) (*backendsChild, backendAddrs, error) {
	var addrs backendAddrs
	cmd := exec.Command(os.Args[0], "-backends", role, "-primary-delay", primaryDelay.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, addrs, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, addrs, err
	}
	if err := cmd.Start(); err != nil {
		return nil, addrs, err
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &addrs)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, addrs, fmt.Errorf("starting the %s' backends: %v", role, err)
	}
	return &backendsChild{cmd: cmd, stdin: stdin, control: addrs.Control}, addrs, nil
}

// controlClient is the client of the backends' control endpoint.
var controlClient = &http.Client{Timeout: 30 * time.Second}

// primaryReceived returns how many requests the primary has received.
func (e *environment) primaryReceived() (int64, error) {
	url := "http://" + e.children[rolePrimary].control + "/received"
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
	url := "http://" + e.children[roleShadows].control + "/flapping?mode=" + mode
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	if _, err := fetch(controlClient, req, url, ""); err != nil {
		return fmt.Errorf("setting the flapping shadow to %s: %v", mode, err)
	}
	return nil
}

// cpuTime is the user plus system time the backends have used, the
// primary's and the shadows' together.
func (e *environment) cpuTime() time.Duration {
	var pids []int
	for _, c := range e.children {
		pids = append(pids, c.cmd.Process.Pid)
	}
	return processCPU(pids...)
}

// cpuTimeOf is the user plus system time the role's child has used.
func (e *environment) cpuTimeOf(role string) time.Duration {
	return processCPU(e.children[role].cmd.Process.Pid)
}

// close stops the children: each exits when its standard input closes.
func (e *environment) close() {
	for _, c := range e.children {
		c.stdin.Close()
		_ = c.cmd.Wait()
	}
}

// serveBackends is a child's side: for rolePrimary it starts the primary,
// for roleShadows every kind of shadow, and a control endpoint; it reports
// their addresses on standard output, and serves until standard input
// closes.
func serveBackends(role string, primaryDelay time.Duration) error {
	var addrs backendAddrs
	var control http.Handler
	switch role {
	case rolePrimary:
		primary, err := newPrimary(primaryDelay)
		if err != nil {
			return err
		}
		addrs.Primary, control = primary.addr, primaryControl(primary)
	case roleShadows:
		addrs.Shadows = map[string]string{}
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
		control = shadowsControl(shadows, flapping)
	default:
		return fmt.Errorf("unknown role %q: want %s or %s", role, rolePrimary, roleShadows)
	}
	c, err := serve(control)
	if err != nil {
		return err
	}
	addrs.Control = c.addr
	if err := json.NewEncoder(os.Stdout).Encode(addrs); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
