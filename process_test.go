package mirror

// Helpers for tests that run other programs (a built Caddy, Prometheus):
// each binds its own ports, on port 0, and the test reads the addresses
// back from what the program logs, so that no port is chosen before it is
// bound.

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// processLog collects what a program writes, for reading while it runs.
type processLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write implements io.Writer.
func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *processLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startProcess starts cmd, stops it with an interrupt when the test ends,
// and logs what it wrote if the test failed. It returns the program's
// output as it comes.
func startProcess(t *testing.T, cmd *exec.Cmd, name string) *processLog {
	t.Helper()
	logs := new(processLog)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logged:\n%s", name, logs.String())
		}
	})
	return logs
}

// waitForLogged polls a program's output until re matches it, and returns
// the first submatch. It fails the test after fleetWait.
func waitForLogged(t *testing.T, logs *processLog, what string, re *regexp.Regexp) string {
	t.Helper()
	var got string
	poll(t, what, func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			got = m[1]
			return true
		}
		return false
	})
	return got
}

// caddyPortZero matches the line in which Caddy reports the address that
// a listener on port 0 of %s got, and captures that address.
const caddyPortZero = `"msg":"port 0 listener","input_address":"%s:0","actual_address":"([^"]+)"`

// unixClient returns an HTTP client that sends every request to the unix
// socket at path, whatever host the URL names, each on a new connection:
// loading a config may restart Caddy's admin server, which closes the
// connections it had.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}, Timeout: waitLimit}
}
